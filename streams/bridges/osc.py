"""OSC bridge (python-osc over UDP): the music's pulse out for VJ tools, the same commands as MQTT in.

Out (`--osc-out HOST:PORT`), each sent at the moment it sounds (scheduled from the wall-clock send times
of the notes, not when the engine decided it, which is up to the conductor's horizon earlier):

    /cuecast/beat   BEAT BAR        every beat (BEAT 1..beats per bar, BAR counting from 1)
    /cuecast/bar    BAR             every downbeat
    /cuecast/tempo  BPM             when the tempo changes
    /cuecast/cut    KIND T          when a cut's chord sounds (KIND hard/fade/dissolve/hint, T its media time)
    /cuecast/phase  PHASE           0..1 through the beat, PHASE_HZ times a second (a ramp to map directly)
    /cuecast/valence V, /cuecast/arousal A   (-1..1) with every state, and /cuecast/next_cut SECONDS (-1: none)

In (`--osc-in HOST:PORT`): /cuecast/set/mood V A [HOLD_S] (or `release`), /cuecast/set/intensity X,
/cuecast/set/tempo BPM (0 releases), /cuecast/set/mute 1|0, /cuecast/set/panic, /cuecast/set/generator NAME,
/cuecast/set/cut [SECONDS], and the hint forms /cuecast/cut [SECONDS], /cuecast/cut_at MEDIA_TIME. A refused
command is one warning line and a /cuecast/error MESSAGE sent back to the sender. Bound beyond loopback,
every message must carry the token as its first argument.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import subprocess
import sys
import threading
import time
from typing import Callable

from cuecast.control import BeatEvent, BoundaryEvent, CommandError, Replan, State, osc_command, parse_command

PHASE_HZ = 30.0
PREFIX = "/cuecast"
SPIN_S = 0.001  # the sender wakes this long before a moment, then spins to it


class OscSender:
    """Sends timed OSC messages at their wall-clock moments (time.monotonic) from a small child process.

    Not a thread: in the engine's process the analysis holds the GIL often enough to make a thread send
    tens of milliseconds late; a process of its own (at real-time priority where the OS allows it, like the
    MIDI sender) sleeps to a millisecond before each moment and then spins to it. It gets its schedule as
    JSON lines on a pipe, and ends when the pipe closes (also when the engine dies).
    """

    def __init__(self, host: str, port: int, phase_hz: float = PHASE_HZ):
        self.host, self.port, self.phase_hz = host, port, phase_hz
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> "OscSender":
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from cuecast.streams.bridges.osc import sender_main; sender_main()",
             self.host, str(self.port), str(self.phase_hz)], stdin=subprocess.PIPE, text=True, bufsize=1)
        return self

    def _put(self, *item) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            with self._lock:  # the engine's thread (events) and the loop's (close) may both write
                proc.stdin.write(json.dumps(item) + "\n")
        except (BrokenPipeError, OSError, ValueError):
            pass

    def at(self, wall: float, address: str, args: list) -> None:
        self._put("at", wall, address, args)

    def now(self, address: str, args: list) -> None:
        self._put("at", 0.0, address, args)

    def beat(self, wall: float, bpm: float) -> None:
        self._put("beat", wall, bpm)

    def void_from(self, wall: float) -> None:
        """Drop what was scheduled at or after `wall` (a re-plan threw that music away)."""
        self._put("void", wall)

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            with self._lock:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def sender_main() -> None:
    """The OSC sender process: argv host port phase_hz; the schedule on stdin."""
    import os
    import select
    import signal

    from pythonosc.udp_client import SimpleUDPClient

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle; our pipe closes after
    host, port, phase_hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(30, os.sched_get_priority_max(os.SCHED_FIFO))))
    except (AttributeError, OSError):
        try:
            os.nice(-5)
        except (AttributeError, OSError):
            pass
    client = SimpleUDPClient(host, port)
    phase_every = 1.0 / phase_hz if phase_hz > 0 else 0.0
    heap: list[tuple[float, int, str, list]] = []
    beats: list[tuple[float, float]] = []  # (wall, bpm), sorted
    seq = itertools.count()
    fd = sys.stdin.fileno()
    pending = b""
    next_phase = time.monotonic()

    def send(address: str, args: list) -> None:
        try:
            client.send_message(address, args)
        except OSError:
            pass  # nobody listening (ICMP refused) or no route: OSC is fire and forget

    def take(line: bytes) -> None:
        nonlocal heap, beats
        try:
            item = json.loads(line)
        except ValueError:
            return
        if item[0] == "at":
            heapq.heappush(heap, (float(item[1]), next(seq), item[2], item[3]))
        elif item[0] == "beat":
            beats.append((float(item[1]), float(item[2])))
            beats.sort()
            del beats[:-64]
        elif item[0] == "void":
            wall = float(item[1])
            heap = [e for e in heap if e[0] < wall - 1e-6 or e[0] == 0.0]
            heapq.heapify(heap)
            beats = [b for b in beats if b[0] < wall - 1e-6]

    while True:
        now = time.monotonic()
        due = heap[0][0] if heap else now + 0.5
        if phase_every:
            due = min(due, next_phase)
        wait = due - now - SPIN_S
        if wait > 0:
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return  # the engine is gone or done
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    take(line)
                continue
        while time.monotonic() < due:
            pass  # the last stretch: spin
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, address, args = heapq.heappop(heap)
            send(address, args)
        if phase_every and now >= next_phase:
            next_phase = now + phase_every
            last = next(((w, bpm) for w, bpm in reversed(beats) if w <= now), None)
            if last is not None:
                send(f"{PREFIX}/phase", [min(0.999, (now - last[0]) * last[1] / 60.0)])


class OscOut:
    """Feeds an OscSender from the engine's events."""

    def __init__(self, host: str, port: int, link, latency_s: float = 0.0, phase_hz: float = PHASE_HZ):
        self.link = link
        self.latency = latency_s
        self.sender = OscSender(host, port, phase_hz)
        self._bpm: float | None = None

    async def run(self) -> None:
        """Until the engine ends. Events are taken on the engine's thread as they are published (`tap`), so a
        busy event loop never delays a cut's OSC behind its chord; the subscription only says when it ends."""
        events = self.link.subscribe(maxsize=16)
        self.sender.start()
        untap = self.link.tap(self.take)
        try:
            async for _ in events:
                pass
        finally:
            untap()
            events.close()
            self.sender.close()

    def take(self, ev) -> None:
        s, lat = self.sender, self.latency
        if isinstance(ev, BeatEvent):
            s.beat(ev.wall + lat, ev.bpm)
            s.at(ev.wall + lat, f"{PREFIX}/beat", [ev.beat, ev.bar])
            if ev.beat == 1:
                s.at(ev.wall + lat, f"{PREFIX}/bar", [ev.bar])
            if self._bpm is None or abs(ev.bpm - self._bpm) > 0.01:
                self._bpm = ev.bpm
                s.at(ev.wall + lat, f"{PREFIX}/tempo", [float(ev.bpm)])
        elif isinstance(ev, BoundaryEvent) and ev.kind != "mood":  # a cut, not a section a mood command began
            s.at(ev.chord_wall + lat, f"{PREFIX}/cut", [ev.kind, float(ev.t)])
        elif isinstance(ev, Replan):
            s.void_from(ev.wall + lat)
            self._bpm = None
        elif isinstance(ev, State):
            s.now(f"{PREFIX}/valence", [float(ev.valence)])
            s.now(f"{PREFIX}/arousal", [float(ev.arousal)])
            s.now(f"{PREFIX}/next_cut", [-1.0 if ev.next_boundary_in is None else float(ev.next_boundary_in)])


class OscIn:
    """Listens for commands; replies /cuecast/error to the sender of a refused one."""

    def __init__(self, host: str, port: int, link, warn: Callable[..., None] | None = None, token: str | None = None):
        self.host, self.port, self.link = host, port, link
        self.warn = warn or (lambda msg, key=None: None)
        self.token = token
        self.ready = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._transport = None

    async def run(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import AsyncIOOSCUDPServer

        disp = Dispatcher()
        disp.map(f"{PREFIX}/set/*", self._on_message, needs_reply_address=True)
        disp.map(f"{PREFIX}/cut", self._on_message, needs_reply_address=True)
        disp.map(f"{PREFIX}/cut_at", self._on_message, needs_reply_address=True)
        server = AsyncIOOSCUDPServer((self.host, self.port), disp, asyncio.get_running_loop())
        try:
            self._transport, _ = await server.create_serve_endpoint()
        except OSError as e:
            raise OSError(f"cannot listen for OSC commands on {self.host}:{self.port}: {e.strerror or e}") from None
        self.ready.set()
        try:
            await asyncio.Future()  # until cancelled
        finally:
            self._transport.close()
            for t in list(self._tasks):
                t.cancel()

    def _on_message(self, client, address: str, *args) -> None:
        try:
            if self.token is not None:
                if not args or args[0] != self.token:
                    raise CommandError("no token or a wrong one")
                args = args[1:]
            if address == f"{PREFIX}/cut_at":
                if len(args) != 1:
                    raise CommandError("/cuecast/cut_at takes one media time")
                cmd = parse_command("cut", {"t": args[0]}, raw=False, source="osc")
            elif address == f"{PREFIX}/cut":
                cmd = osc_command("cut", args, source="osc")
            else:
                cmd = osc_command(address[len(PREFIX) + len("/set/"):], args, source="osc")
        except CommandError as e:
            self._refuse(client, address, e)
            return
        task = asyncio.get_running_loop().create_task(self._apply(client, address, cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, client, address: str, cmd) -> None:
        try:
            await self.link.apply(cmd)
        except CommandError as e:
            self._refuse(client, address, e)

    def _refuse(self, client, address: str, e: Exception) -> None:
        self.warn(f"OSC command {address} refused: {e}", key=f"osc-refused:{address}")
        if self._transport is None or client is None:
            return
        from pythonosc.osc_message_builder import OscMessageBuilder

        b = OscMessageBuilder(f"{PREFIX}/error")
        b.add_arg(f"{address}: {e}"[:200])
        try:
            self._transport.sendto(b.build().dgram, client)
        except OSError:
            pass
