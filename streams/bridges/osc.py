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
import threading
import time
from typing import Callable

from cuecast.control import BeatEvent, BoundaryEvent, CommandError, Replan, State, osc_command, parse_command

PHASE_HZ = 30.0
PREFIX = "/cuecast"


class OscSender:
    """A thread that sends timed OSC messages at their wall-clock moments (time.monotonic)."""

    def __init__(self, host: str, port: int, phase_hz: float = PHASE_HZ):
        from pythonosc.udp_client import SimpleUDPClient

        self.client = SimpleUDPClient(host, port)
        self.phase_every = 1.0 / phase_hz if phase_hz > 0 else 0.0
        self._heap: list[tuple[float, int, str, list]] = []
        self._beats: list[tuple[float, float]] = []  # (wall, bpm) of beats, sorted
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self.sent: list[tuple[float, str, list]] = []  # (time sent, address, args): the last few hundred
        self._thread = threading.Thread(target=self._run, name="cuecast-osc-out", daemon=True)

    def start(self) -> "OscSender":
        self._thread.start()
        return self

    def at(self, wall: float, address: str, args: list) -> None:
        with self._cond:
            heapq.heappush(self._heap, (wall, next(self._seq), address, args))
            self._cond.notify()

    def now(self, address: str, args: list) -> None:
        self.at(0.0, address, args)

    def beat(self, wall: float, bpm: float) -> None:
        with self._cond:
            self._beats.append((wall, bpm))
            self._beats.sort()
            del self._beats[:-64]

    def void_from(self, wall: float) -> None:
        """Drop what was scheduled at or after `wall` (a re-plan threw that music away)."""
        with self._cond:
            self._heap = [e for e in self._heap if e[0] < wall - 1e-6 or e[0] == 0.0]
            heapq.heapify(self._heap)
            self._beats = [b for b in self._beats if b[0] < wall - 1e-6]

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(2)

    def _phase(self, now: float) -> float | None:
        last = None
        for w, bpm in self._beats:
            if w <= now:
                last = (w, bpm)
            else:
                break
        if last is None:
            return None
        return min(0.999, (now - last[0]) * last[1] / 60.0)

    def _run(self) -> None:
        next_phase = time.monotonic()
        while True:
            with self._cond:
                if self._stop:
                    return
                now = time.monotonic()
                due = self._heap[0][0] if self._heap else now + 1.0
                if self.phase_every:
                    due = min(due, next_phase)
                if due > now:
                    self._cond.wait(due - now)
                    continue
                batch = []
                while self._heap and self._heap[0][0] <= now:
                    batch.append(heapq.heappop(self._heap))
                phase = None
                if self.phase_every and now >= next_phase:
                    next_phase = now + self.phase_every
                    phase = self._phase(now)
            for _, _, address, args in batch:
                self._send(address, args)
            if phase is not None:
                self._send(f"{PREFIX}/phase", [phase])

    def _send(self, address: str, args: list) -> None:
        try:
            self.client.send_message(address, args)
        except OSError:
            return  # nobody listening (ICMP refused) or no route: OSC is fire and forget
        self.sent.append((time.monotonic(), address, args))
        if len(self.sent) > 512:
            del self.sent[:256]


class OscOut:
    """Feeds an OscSender from the engine's events."""

    def __init__(self, host: str, port: int, link, latency_s: float = 0.0, phase_hz: float = PHASE_HZ):
        self.link = link
        self.latency = latency_s
        self.sender = OscSender(host, port, phase_hz)
        self._bpm: float | None = None

    async def run(self) -> None:
        events = self.link.subscribe(maxsize=4096)
        self.sender.start()
        try:
            async for ev in events:
                self.take(ev)
        finally:
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
