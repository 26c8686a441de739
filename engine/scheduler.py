"""Real-time scheduling: notes in media time -> MIDI messages sent at wall-clock deadlines.

The sender runs in its own small process, not in a thread: with the analysis holding the GIL and keeping
both cores busy, a sender thread in the engine's process was measured sending 18-45 ms late (p99); a
process with its own interpreter, at real-time priority where the OS allows it, sends within 0.01 ms.
It sleeps until a little before each absolute deadline (never a chain of relative sleeps, so errors do
not add up), then spins to the deadline. All ports live in that process; it keeps track of every note
sounding on every output, so on the end, on an error, on Ctrl-C or SIGTERM, on a lost port, and even when
the engine's process dies (its pipe closes), it sends note-offs for them and then all-notes-off,
all-sound-off and sustain-off on every channel used.

The RealtimeScheduler (engine side) is a NoteSink: it turns media time into wall time with `wall_of` and
hands events to the sender ahead of time.
"""

from __future__ import annotations

import gc
import heapq
import importlib.util
import math
import mmap
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from cuecast.types import Note

SPIN_S = 0.0006  # wake this long before a deadline, then spin: covers the OS wake-up latency
CHECK_PORTS_S = 0.25  # how often the sender looks for lost (and returning) ports
HOUSEKEEPING_GAP_S = 0.006  # ... and does it only when the next deadline is at least this far away
POLL_CAP_S = 0.02  # the sender never sleeps longer than this, so an abort is seen quickly
FLUSH_S = 0.03  # after the last message, give the MIDI backend a few periods to deliver it

# MIDI status bytes
NOTE_OFF, NOTE_ON, CC, PROGRAM = 0x80, 0x90, 0xB0, 0xC0
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
CC_VOLUME, CC_SUSTAIN, CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF = 7, 64, 120, 123
PPQN = 24

# status fields the sender shares with the engine (a shared array, so it never blocks on a pipe)
ST_SENT, ST_LATE_P99_MS, ST_LATE_MAX_MS, ST_PRIORITY, ST_ALIVE, ST_RECONNECTS, ST_TEMPO, ST_TICKS = range(8)
ST_OUTPUTS = 8  # then one ok-flag per output
PRIORITIES = {0: "normal", 1: "nice", 2: "realtime (SCHED_FIFO)"}


# ---- engine side ---------------------------------------------------------------------------------


@dataclass
class SendReport:
    """What the sender did, returned by close()."""

    lateness: list[float] = field(default_factory=list)  # send time - deadline, seconds, note messages
    handover_late: list[float] = field(default_factory=list)  # notes the engine handed over past their deadline
    clock_lateness: list[float] = field(default_factory=list)  # the same for MIDI clock ticks
    log: list[tuple[float, bytes]] = field(default_factory=list)  # (wall time, message) sent on output 0
    reconnects: int = 0
    panics: int = 0
    priority: str = "normal"

    def percentiles_ms(self, which: str = "notes") -> dict[str, float]:
        xs = sorted(self.lateness if which == "notes" else self.clock_lateness)
        if not xs:
            return {}
        pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000  # noqa: E731
        return {"n": len(xs), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": xs[-1] * 1000}


class SenderError(Exception):
    """The sender could not start (a port that does not exist, no JACK server): a one-line reason."""


class RealtimeScheduler:
    """NoteSink for live play: hands notes, tempo and cuts to the sender process, ahead of their time.

    outputs: specs (`rtmidi:NAME`, `virtual:NAME`, `jack:NAME`, `synth`, `none`); wall_of: media time ->
    time.monotonic(); channel_map: instrument -> (channel 1..16, program[, volume]); latency_ms: per-output
    offset (positive sends later, to line up with a slower output); link: also lead an Ableton Link
    session with the music's tempo and beat (LinkLeader). Raises SenderError when a port cannot be opened.
    """

    def __init__(self, outputs: Sequence[str], wall_of: Callable[[float], float], channel_map: dict[str, tuple],
                 clock_out: bool = True, latency_ms: dict[str, float] | Sequence[float] | None = None,
                 record: bool = False, realtime_priority: bool = True, synth_options: dict | None = None,
                 client_name: str = "cuecast", start_timeout: float = 20.0, link: bool = False):
        self.outputs = [str(o) for o in outputs]
        if not self.outputs:
            raise SenderError("no output: give at least one --midi-out (or `none`)")
        if link and importlib.util.find_spec("aalink") is None:
            raise SenderError("Ableton Link needs the aalink package: pip install 'cuecast[link]'")
        self.wall_of = wall_of
        self.channel_map = {k: tuple(v) for k, v in channel_map.items()}
        if isinstance(latency_ms, dict):
            lat = [float(latency_ms.get(o, 0.0)) / 1000 for o in self.outputs]
        else:
            lat = [float(x) / 1000 for x in (latency_ms or [0.0] * len(self.outputs))]
        self.latency_s = lat
        self._next_id = 0
        self._lock = threading.Lock()
        self._closed = False
        self._aborted = False
        self.report: SendReport | None = None
        # A plain child interpreter (not multiprocessing's spawn, which re-imports the caller's __main__):
        # it gets one end of a socket pair and a small shared status file.
        self._status_file = tempfile.NamedTemporaryFile(prefix="cuecast-sender-", suffix=".status")
        self._status_file.truncate(8 * (ST_OUTPUTS + len(self.outputs)))
        self._status_map = mmap.mmap(self._status_file.fileno(), 0)
        self._status = memoryview(self._status_map).cast("d")
        self._conn, child = mp.Pipe(duplex=True)
        setup = {"outputs": self.outputs, "latency_s": lat, "channel_map": self.channel_map, "clock_out": clock_out,
                 "record": record, "realtime": realtime_priority, "synth_options": synth_options or {},
                 "client_name": client_name, "status_path": self._status_file.name, "link": link}
        fd = child.fileno()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", f"from cuecast.engine.scheduler import child_main; child_main({fd})"],
            pass_fds=(fd,), stdin=subprocess.DEVNULL)
        child.close()
        self._send(("setup", setup))
        self._wait_ready(start_timeout)

    def _wait_ready(self, timeout: float) -> None:
        try:
            if not self._conn.poll(timeout):
                self._kill()
                raise SenderError(f"the MIDI sender did not start within {timeout:.0f} s")
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._kill()
            raise SenderError("the MIDI sender process ended while starting") from None
        if kind == "error":
            self._wait_exit(2)
            self._closed = True
            self._conn.close()
            raise SenderError(payload)

    # ---- NoteSink ----
    def tempo(self, t: float, bpm: float, beat: float) -> None:
        self._send(("tempo", self.wall_of(t), float(bpm), float(beat)))

    def notes(self, notes: list[Note]) -> None:
        events = []
        for n in notes:
            ch = self._channel(n.instrument)
            events.append((self.wall_of(n.start), self.wall_of(max(n.end, n.start)), ch, int(n.pitch) & 127,
                           max(1, min(127, int(n.velocity))), self._next_id))
            self._next_id += 1
        if events:
            self._send(("notes", events))

    def cut_at(self, t: float) -> None:
        self._send(("cut", self.wall_of(t)))

    def close(self) -> None:
        """Stop, and leave nothing sounding. Without an error in flight, first play out what is scheduled
        (the engine ends the music with cut_at before it closes); with one, stop at once."""
        if self._closed:
            return
        drain = sys.exc_info()[0] is None and not self._aborted
        self._send(("close", drain))
        self._closed = True
        self.report = self._collect(timeout=(60.0 if drain else 5.0))

    # ---- extras ----
    def abort(self) -> None:
        """Silence everything now (signal handlers call this; it only sends a signal, never blocks)."""
        self._aborted = True
        if self._alive():
            try:
                os.kill(self._proc.pid, signal.SIGUSR1)
            except OSError:
                pass

    def status(self) -> dict:
        s = self._status
        return {
            "sent": int(s[ST_SENT]), "late_p99_ms": s[ST_LATE_P99_MS], "late_max_ms": s[ST_LATE_MAX_MS],
            "priority": PRIORITIES.get(int(s[ST_PRIORITY]), "normal"), "alive": bool(s[ST_ALIVE]) and self._alive(),
            "reconnects": int(s[ST_RECONNECTS]), "clock_bpm": s[ST_TEMPO], "ticks": int(s[ST_TICKS]),
            "outputs": [(o, bool(s[ST_OUTPUTS + i])) for i, o in enumerate(self.outputs)],
        }

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _channel(self, instrument: str) -> int:
        spec = self.channel_map.get(instrument)
        if spec is None:
            return 9 if instrument == "drums" else 0
        return int(spec[0]) - 1

    def _send(self, msg) -> None:
        if self._closed:
            return
        with self._lock:
            try:
                self._conn.send(msg)
            except (BrokenPipeError, OSError, EOFError):
                pass  # the sender is gone (it silenced everything on its way out): nothing left to do

    def _collect(self, timeout: float) -> SendReport:
        deadline = time.monotonic() + timeout
        report = SendReport()
        try:
            while time.monotonic() < deadline:
                if self._aborted and timeout > 5.0:  # a signal arrived while draining: stop waiting long
                    deadline = min(deadline, time.monotonic() + 5.0)
                exited = not self._alive()  # looked at before the poll: a report sent just before exit is still read
                if self._conn.poll(0.05):
                    kind, payload = self._conn.recv()
                    if kind == "closed":
                        report = SendReport(**payload)
                        break
                elif exited:
                    break
        except (EOFError, OSError):
            pass
        except KeyboardInterrupt:
            self.abort()
        if not self._wait_exit(3):
            self._kill()
        self._conn.close()
        return report

    def _alive(self) -> bool:
        return self._proc.poll() is None

    def _wait_exit(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _kill(self) -> None:
        if self._alive():
            self._proc.terminate()  # SIGTERM: the sender silences everything before it goes
            if self._wait_exit(3):
                return
            self._proc.kill()
            self._proc.wait()


# ---- sender process --------------------------------------------------------------------------------


def _raise_priority(want: bool) -> int:
    """SCHED_FIFO where allowed (root, or an rtprio limit), else a better nice value, else nothing."""
    if not want:
        return 0
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(40, os.sched_get_priority_max(os.SCHED_FIFO))))
        return 2
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-10)
        return 1
    except (AttributeError, OSError):
        return 0


class _TempoMap:
    """MIDI clock positions (in ticks) against wall time, built from the conductor's tempo() calls.

    Each segment is (wall, tick, ticks per second). The tick count only moves forward: when a tempo call
    puts a beat where the ticks already sent cannot follow (a boundary that fell between beats), the clock
    carries on from where it is at the new tempo instead of jumping.
    """

    def __init__(self) -> None:
        self.segs: list[tuple[float, float, float]] = []
        self.beat_offset = 0.0  # conductor beat + offset = clock beat

    def position(self, wall: float) -> float:
        w, tick, rate = self.segs[-1]
        for seg in reversed(self.segs):
            if seg[0] <= wall:
                w, tick, rate = seg
                break
        else:
            w, tick, rate = self.segs[0]
        return tick + (wall - w) * rate

    def add(self, wall: float, bpm: float, beat: float) -> None:
        self.segs = [s for s in self.segs if s[0] < wall]
        rate = bpm * PPQN / 60.0
        want = (beat + self.beat_offset) * PPQN
        if self.segs:
            here = self.position(wall)
            if abs(want - here) > 0.5:  # off the grid: keep the clock continuous
                self.beat_offset = here / PPQN - beat
                want = here
        self.segs.append((wall, want, rate))

    def cut(self, wall: float) -> None:
        keep = [s for s in self.segs if s[0] <= wall]
        self.segs = keep or self.segs[:1]

    def prune(self, k_min: int) -> None:
        """Forget segments wholly before tick k_min (so a night-long run stays fast)."""
        while len(self.segs) > 2 and self.segs[1][1] <= k_min and self.segs[1][0] < time.monotonic() - 1.0:
            self.segs.pop(0)

    def segment_at(self, wall: float) -> tuple[float, float, float] | None:
        """The segment playing at wall time `wall` (None before the first one starts)."""
        now = None
        for seg in self.segs:
            if seg[0] <= wall:
                now = seg
            else:
                break
        return now

    def wall_of_tick(self, k: int) -> float:
        seg = self.segs[0]
        for s in self.segs:
            if s[1] <= k + 1e-9:
                seg = s
            else:
                break
        w, tick, rate = seg
        return w + (k - tick) / rate


class LinkLeader:
    """Ableton Link (the `link` extra, aalink): the Link session follows the music's tempo and beat.

    cuecast leads, since its tempo comes from the picture: whenever a tempo segment starts, the session gets
    its tempo and the beat of our MIDI clock at that moment (force_beat), so other Link apps bend with the
    conductor's tempo moves and stay in phase with the MIDI clock. Link's clock is the monotonic clock.
    """

    def __init__(self) -> None:
        import asyncio  # noqa: PLC0415
        from aalink import Link  # noqa: PLC0415

        # aalink wants an event loop for its awaitables (sync); the sender awaits nothing, so it never runs
        self._loop = asyncio.new_event_loop()
        self.link = Link(120.0, self._loop)
        self.link.enabled = True
        self.playing: tuple[float, float, float] | None = None  # the tempo segment last published

    def follow(self, tempo: _TempoMap, now: float) -> None:
        seg = tempo.segment_at(now)
        if seg is None or seg == self.playing:
            return
        self.playing = seg
        self.link.tempo = seg[2] * 60.0 / PPQN
        self.link.force_beat(tempo.position(now) / PPQN)

    def close(self) -> None:
        self.link.enabled = False  # peers see us leave at once
        self._loop.close()


class Sender:
    """The sender process's state: a heap of timed messages per output, sounding notes, the MIDI clock."""

    def __init__(self, outputs: list, latency_s: list[float], channel_map: dict[str, tuple], clock_out: bool,
                 record: bool, status=None, priority: int = 0):
        self.outputs = outputs
        self.lat = latency_s
        self.channel_map = channel_map
        self.clock_out = clock_out
        self.record = record
        self.status = status
        self.heap: list[tuple] = []  # (deadline, order, seq, kind, output, payload)
        self.seq = 0
        n = len(outputs)
        self.sounding: list[dict[tuple[int, int], int]] = [dict() for _ in range(n)]  # (ch, pitch) -> count
        self.on_sent: list[set[int]] = [set() for _ in range(n)]  # note ids whose note-on went out
        self.lost: list[bool] = [False] * n
        self.lost_keys: list[set[tuple[int, int]]] = [set() for _ in range(n)]  # sounding when the port went
        self.used_channels: set[int] = {int(v[0]) - 1 for v in channel_map.values()}
        self.tempo = _TempoMap()
        self.next_tick: list[int | None] = [None] * n  # next clock tick per output (None: not started)
        self.lateness: list[float] = []
        self.tempo_arrived = 0.0
        self.handover_late: list[float] = []  # how late notes came from the engine (past their deadline)
        self.clock_lateness: list[float] = []
        self.recent: list[float] = []
        self.log: list[tuple[float, bytes]] = []
        self.reconnects = 0
        self.panics = 0
        self.sent = 0
        self.priority = priority
        self.next_check = time.monotonic() + CHECK_PORTS_S
        self.next_status = 0.0
        self.link: LinkLeader | None = None

    # ---- sending ----
    def _out(self, o: int, msg: bytes, deadline: float | None = None, clock: bool = False) -> None:
        if self.lost[o]:
            return
        now = time.monotonic()  # the moment the message is handed to the port
        ok = self.outputs[o].send(msg)
        if deadline is not None:
            late = now - deadline
            (self.clock_lateness if clock else self.lateness).append(late)
            self.recent.append(late)
        if ok:
            self.sent += 1
            if self.record and o == 0 and msg[0] < 0xF0:  # channel messages; clock and transport are not file events
                self.log.append((now, bytes(msg)))

    def setup_channels(self, o: int) -> None:
        """Program (and volume) per channel, sent at start and again after a port comes back."""
        for spec in self.channel_map.values():
            ch, prog = int(spec[0]) - 1, int(spec[1])
            if ch != 9:  # channel 10 is the drum kit in GM: a program change there picks a kit, leave it
                self._out(o, bytes([PROGRAM | ch, prog & 127]))
            if len(spec) > 2 and spec[2] is not None:
                self._out(o, bytes([CC | ch, CC_VOLUME, int(spec[2]) & 127]))

    def panic(self, o: int, keys=None) -> None:
        """Note-offs for what sounds, then all-notes-off, all-sound-off and sustain-off on every channel used."""
        keys = list(self.sounding[o]) if keys is None else list(keys)
        for ch, pitch in keys:
            self._out(o, bytes([NOTE_OFF | ch, pitch, 0]))
        for ch in sorted(self.used_channels):
            for cc in (CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF, CC_SUSTAIN):
                self._out(o, bytes([CC | ch, cc, 0]))
        self.sounding[o].clear()
        self.on_sent[o].clear()
        self.panics += 1

    # ---- input from the engine ----
    def push(self, deadline: float, order: int, kind: str, o: int, payload) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (deadline, order, self.seq, kind, o, payload))

    def handle(self, msg) -> str | None:
        kind = msg[0]
        if kind == "notes":
            arrived = time.monotonic()  # a note handed over after its deadline is the engine's lateness, not ours
            for w_on, w_off, ch, pitch, vel, nid in msg[1]:
                self.used_channels.add(ch)
                if w_on < arrived:
                    self.handover_late.append(arrived - w_on)
                for o, lat in enumerate(self.lat):
                    # at equal deadlines: clock first, then note-offs, then note-ons (a repeated key re-sounds)
                    self.push(w_on + lat, 2, "on", o, (nid, ch, pitch, vel, arrived))
                    self.push(w_off + lat, 1, "off", o, (nid, ch, pitch, arrived))
        elif kind == "tempo":
            _, wall, bpm, beat = msg
            self.tempo.add(wall, bpm, beat)
            self.tempo_arrived = time.monotonic()
            if self.status is not None:
                self.status[ST_TEMPO] = bpm
        elif kind == "cut":
            self.cut(msg[1])
        elif kind in ("close", "abort"):
            return kind if kind == "abort" or not msg[1] else "drain"
        return None

    def cut(self, wall: float) -> None:
        """Drop what starts at/after the cut; end what sounds across it at the cut."""
        now = time.monotonic()
        dropped: set[tuple[int, int]] = set()
        kept = []
        for ev in self.heap:
            deadline, order, seq, kind, o, payload = ev
            at = wall + self.lat[o]
            if kind == "on" and deadline >= at:
                dropped.add((o, payload[0]))
                continue
            kept.append(ev)
        heap = []
        for ev in kept:
            deadline, order, seq, kind, o, payload = ev
            if kind == "off":
                if (o, payload[0]) in dropped:
                    continue
                at = max(wall + self.lat[o], now)
                if deadline > at:
                    ev = (at, order, seq, kind, o, payload)
            heap.append(ev)
        heapq.heapify(heap)
        self.heap = heap
        self.tempo.cut(wall)

    # ---- timing ----
    def next_due(self) -> float:
        due = self.heap[0][0] if self.heap else math.inf
        if self.clock_out and self.tempo.segs:
            for o in range(len(self.outputs)):
                due = min(due, self._tick_deadline(o))
        return due

    def _tick_deadline(self, o: int) -> float:
        k = self.next_tick[o]
        if k is None:
            return self.tempo.segs[0][0] + self.lat[o]
        return self.tempo.wall_of_tick(k) + self.lat[o]

    def dispatch(self, now: float) -> None:
        """Send everything whose deadline has come, clock ticks and notes in deadline order."""
        while True:
            note_due = self.heap[0][0] if self.heap else math.inf
            tick_o, tick_due = -1, math.inf
            if self.clock_out and self.tempo.segs:
                for o in range(len(self.outputs)):
                    d = self._tick_deadline(o)
                    if d < tick_due:
                        tick_o, tick_due = o, d
            if min(note_due, tick_due) > now:
                return
            if tick_due <= note_due:
                self._send_tick(tick_o, tick_due)
            else:
                self._send_event(heapq.heappop(self.heap))

    def _send_tick(self, o: int, deadline: float) -> None:
        if self.next_tick[o] is None:  # the clock starts: song position then start (or continue)
            k0 = int(math.ceil(self.tempo.segs[0][1] - 1e-9))
            sixteenths = k0 // 6
            self._out(o, bytes([SONG_POSITION, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F]))
            self._out(o, bytes([START if sixteenths == 0 else CONTINUE]))
            self.next_tick[o] = k0
        self._out(o, bytes([CLOCK]), max(deadline, self.tempo_arrived), clock=True)
        self.next_tick[o] += 1
        if self.next_tick[o] % PPQN == 0:
            self.tempo.prune(min(k for k in self.next_tick if k is not None))
        if self.status is not None and o == 0:
            self.status[ST_TICKS] = self.next_tick[o]

    def _send_event(self, ev: tuple) -> None:
        deadline, _, _, kind, o, payload = ev
        if kind == "on":
            nid, ch, pitch, vel, arrived = payload
            if self.lost[o]:
                return
            key = (ch, pitch)
            deadline = max(deadline, arrived)
            if self.sounding[o].get(key, 0) > 0:  # the same key again: end it first so it sounds anew
                self._out(o, bytes([NOTE_OFF | ch, pitch, 0]))
            self._out(o, bytes([NOTE_ON | ch, pitch, vel]), deadline)
            self.sounding[o][key] = self.sounding[o].get(key, 0) + 1
            self.on_sent[o].add(nid)
        else:
            nid, ch, pitch, arrived = payload
            deadline = max(deadline, arrived)
            if nid not in self.on_sent[o]:
                return  # its note-on was dropped, or a panic already ended it
            self.on_sent[o].discard(nid)
            key = (ch, pitch)
            left = self.sounding[o].get(key, 0) - 1
            if left <= 0:
                self.sounding[o].pop(key, None)
                self._out(o, bytes([NOTE_OFF | key[0], key[1], 0]), deadline)
            else:
                self.sounding[o][key] = left

    # ---- ports ----
    def check_ports(self) -> None:
        for o, out in enumerate(self.outputs):
            if not self.lost[o]:
                if not out.alive():
                    self.lost[o] = True  # remember what sounded there: the device may still hold it
                    self.lost_keys[o] |= set(self.sounding[o])
                    self.sounding[o].clear()
                    self.on_sent[o].clear()
                    out.ok = False
            elif out.reopen():
                self.lost[o] = False
                self.reconnects += 1
                self.panic(o, self.lost_keys[o])  # whatever the device still holds from before: silence it first
                self.lost_keys[o] = set()
                self.setup_channels(o)
                # the clock carries on: tell the device where we are
                if self.next_tick[o] is not None:
                    s = self.next_tick[o] // 6
                    self._out(o, bytes([SONG_POSITION, s & 0x7F, (s >> 7) & 0x7F]))
                    self._out(o, bytes([CONTINUE]))
            if self.status is not None:
                self.status[ST_OUTPUTS + o] = 0.0 if self.lost[o] else 1.0

    def publish(self) -> None:
        if self.status is None:
            return
        r = sorted(self.recent[-512:])
        self.recent = r[-512:] if len(self.recent) > 4096 else self.recent
        s = self.status
        s[ST_SENT] = self.sent
        if r:
            s[ST_LATE_P99_MS] = r[min(len(r) - 1, int(0.99 * len(r)))] * 1000
            s[ST_LATE_MAX_MS] = r[-1] * 1000
        s[ST_RECONNECTS] = self.reconnects
        self.recent = []

    def stop(self) -> None:
        """Clock stop with the position, then silence every output."""
        for o in range(len(self.outputs)):
            if self.next_tick[o] is not None:
                self._out(o, bytes([STOP]))
                s = self.next_tick[o] // 6
                self._out(o, bytes([SONG_POSITION, s & 0x7F, (s >> 7) & 0x7F]))
            self.panic(o)
        self.heap = []
        if self.link is not None:
            self.link.close()
            self.link = None

    def result(self) -> dict:
        return {"lateness": self.lateness, "clock_lateness": self.clock_lateness, "log": self.log,
                "handover_late": self.handover_late,
                "reconnects": self.reconnects, "panics": self.panics, "priority": PRIORITIES[self.priority]}


_abort_requested = False


def _on_abort(signum, frame) -> None:
    global _abort_requested
    _abort_requested = True


def child_main(fd: int) -> None:
    """Entry point of the sender interpreter: the setup arrives first on the socket."""
    import faulthandler  # noqa: PLC0415
    from multiprocessing.connection import Connection  # noqa: PLC0415

    faulthandler.enable()  # a crash inside a MIDI backend leaves a Python traceback on stderr
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, _on_abort)
    conn = Connection(fd)
    try:
        kind, setup = conn.recv()
    except (EOFError, OSError):
        return
    with open(setup["status_path"], "r+b") as f:
        status_map = mmap.mmap(f.fileno(), 0)
    status = memoryview(status_map).cast("d")
    try:
        sender_main(conn, status, setup)
    finally:
        status.release()
        status_map.close()


def sender_main(conn, status, setup: dict) -> None:
    """The sender process: open the outputs, then send on time until told to stop (or the engine dies)."""
    from cuecast.streams.midi_out import PortError, open_output  # noqa: PLC0415

    outputs = []
    try:
        for spec in setup["outputs"]:
            outputs.append(open_output(spec, setup["client_name"], **setup["synth_options"]))
    except PortError as e:
        for out in outputs:
            out.close()
        conn.send(("error", str(e)))
        return
    except Exception as e:  # a backend failing in a way we did not foresee: still one line for the user
        for out in outputs:
            out.close()
        conn.send(("error", f"cannot open MIDI output: {type(e).__name__}: {e}"))
        return
    try:  # Link's network threads start here, before the priority rises: they need none
        leader = LinkLeader() if setup.get("link") else None
    except Exception as e:
        for out in outputs:
            out.close()
        conn.send(("error", f"cannot join an Ableton Link session: {type(e).__name__}: {e}"))
        return
    priority = _raise_priority(setup["realtime"])
    s = Sender(outputs, setup["latency_s"], setup["channel_map"], setup["clock_out"], setup["record"], status, priority)
    s.link = leader
    status[ST_PRIORITY] = priority
    status[ST_ALIVE] = 1.0
    for o in range(len(outputs)):
        s.setup_channels(o)
        status[ST_OUTPUTS + o] = 1.0
    gc.collect()
    gc.disable()  # no collector pauses in the sender; it makes little garbage and no cycles
    conn.send(("ready", PRIORITIES[priority]))
    mode = "run"
    try:
        mode = _loop(s, conn)
    finally:
        s.stop()
        time.sleep(FLUSH_S)  # let the backend deliver the last messages before the ports go
        status[ST_ALIVE] = 0.0
        if mode != "eof":  # report before closing the ports: a backend that crashes on close loses nothing
            try:
                conn.send(("closed", s.result()))
            except (BrokenPipeError, OSError):
                pass
        for out in outputs:
            out.close()


def _loop(s: Sender, conn) -> str:
    draining = False
    drain_until = math.inf
    while True:
        if _abort_requested:
            return "abort"
        now = time.monotonic()
        if s.link is not None:  # a tempo segment starts at most POLL_CAP_S (or a clock tick) before this
            s.link.follow(s.tempo, now)
        due = s.next_due()
        # housekeeping (a port check can take milliseconds) only where no deadline is near
        if now >= s.next_check and (due - now > HOUSEKEEPING_GAP_S or now - s.next_check > 2.0):
            s.check_ports()
            s.next_check = now + CHECK_PORTS_S
        if now >= s.next_status and due - now > HOUSEKEEPING_GAP_S:
            s.publish()
            s.next_status = now + 0.25
        now = time.monotonic()
        if draining and (not s.heap or now > drain_until):
            return "drain"
        wait = min(due - now - SPIN_S, POLL_CAP_S)
        if 0 < wait < 0.001:
            time.sleep(wait)  # poll() counts whole milliseconds (rounding up); sleep has no such grain
            continue
        if wait > 0:
            try:
                ready = conn.poll(math.floor(wait * 1000) / 1000)
            except (EOFError, OSError):
                return "eof"
            if ready:
                try:
                    while True:  # take everything waiting, then look at the clock again
                        r = s.handle(conn.recv())
                        if r in ("abort", "close"):
                            return "abort"
                        if r == "drain":
                            draining = True
                            drain_until = time.monotonic() + 60.0
                        if not conn.poll(0):
                            break
                except (EOFError, OSError):
                    return "eof"  # the engine's process is gone: silence everything and go
            continue
        while time.monotonic() < due:  # the last stretch: spin
            pass
        s.dispatch(time.monotonic())


# ---- recording ---------------------------------------------------------------------------------------


def write_record(path: str | Path, log: Sequence[tuple[float, bytes]], wall0: float) -> Path:
    """A MIDI file of what was actually sent, at the real send times (120 bpm, 960 ticks per second)."""
    import mido  # noqa: PLC0415

    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    last = 0
    for wall, raw in sorted(log, key=lambda e: e[0]):
        tick = max(last, int(round((wall - wall0) * 960)))
        if raw[0] >= 0xF0:
            continue
        try:
            msg = mido.Message.from_bytes(list(raw))
        except (ValueError, TypeError):
            continue
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    path = Path(path)
    mid.save(str(path))
    return path
