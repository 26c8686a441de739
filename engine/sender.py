"""The sender process: MIDI messages out at their wall-clock deadlines, and nothing left sounding.

It runs in its own small interpreter, not in a thread: with the analysis holding the GIL and keeping both
cores busy, a sender thread in the engine's process was measured sending 18-45 ms late (p99); a process
with its own interpreter, at real-time priority where the OS allows it, sends within 0.01 ms. It sleeps
until a little before each absolute deadline (never a chain of relative sleeps, so errors do not add up),
then spins to the deadline. All ports live here; it keeps track of every note sounding on every output,
so on the end, on an error, on Ctrl-C or SIGTERM, on a lost port, and even when the engine's process dies
(its socket closes), it sends note-offs for them and then all-notes-off, all-sound-off and sustain-off
on every channel used. The engine side is engine/scheduler.py; the messages are engine/sender_messages.py.
"""

from __future__ import annotations

import gc
import heapq
from array import array
import math
import mmap
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from cuecast.engine.link import LinkLeader
from cuecast.engine.midi_clock import ClockMap
from cuecast.engine.sender_messages import (Close, Closed, Cut, Failed, NoteEvent, Notes, OutputState, Priority,
                                            Ready, SendReport, Setup, StatusSlot, Tempo, decode, encode)
from cuecast.midi import CC, DRUM_CHANNEL, PPQN, TICKS_PER_SIXTEENTH, Status, song_position

SPIN_S = 0.0006  # wake this long before a deadline, then spin: covers the OS wake-up latency
CHECK_PORTS_S = 0.25  # how often the sender looks for lost (and returning) ports
HOUSEKEEPING_GAP_S = 0.006  # ... and does it only when the next deadline is at least this far away
POLL_CAP_S = 0.02  # the sender never sleeps longer than this, so an abort is seen quickly
FLUSH_S = 0.03  # after the last message, give the MIDI backend a few periods to deliver it
NOTE_OFF_FIRST, NOTE_ON_AFTER = 1, 2  # at equal deadlines: clock first, then note-offs, then note-ons
LATE_KEEP = 16384  # lateness samples kept per kind (the most recent); counts and maxima cover all
TEMPO_KEEP_S = 10.0  # without clock out, tempo segments that ended this long ago are forgotten


@dataclass(order=True, slots=True)
class Due:
    """A note-on or note-off waiting in the heap for its deadline on one output."""

    deadline: float
    order: int  # NOTE_OFF_FIRST or NOTE_ON_AFTER: a repeated key ends before it sounds again
    seq: int
    on: bool = field(compare=False)
    output: int = field(compare=False)
    note: NoteEvent = field(compare=False)
    arrived: float = field(compare=False)  # when the engine handed it over


def _raise_priority(want: bool) -> Priority:
    """SCHED_FIFO where allowed (root, or an rtprio limit), else a better nice value, else nothing."""
    if not want:
        return Priority.NORMAL
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(40, os.sched_get_priority_max(os.SCHED_FIFO))))
        return Priority.REALTIME
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-10)
        return Priority.NICE
    except (AttributeError, OSError):
        return Priority.NORMAL




class LateRing:
    """Lateness samples of a night-long run in constant memory: the most recent `size` in a preallocated
    ring of doubles, with the count and the maximum of all of them."""

    def __init__(self, size: int = LATE_KEEP):
        self.buf = array("d", bytes(8 * size))
        self.n = 0
        self.max = 0.0

    def append(self, x: float) -> None:
        self.buf[self.n % len(self.buf)] = x
        self.n += 1
        if x > self.max:
            self.max = x

    def values(self) -> list[float]:
        """The kept samples, oldest first."""
        size = len(self.buf)
        return [self.buf[i % size] for i in range(max(0, self.n - size), self.n)]


class Sender:
    """The sender process's state: a heap of timed messages per output, sounding notes, the MIDI clock."""

    def __init__(self, outputs: list, latency_s: list[float], channels: dict[str, list], clock_out: bool,
                 record: bool, status=None, priority: Priority = Priority.NORMAL):
        self.outputs = outputs
        self.lat = latency_s
        self.channels = channels
        self.clock_out = clock_out
        self.record = record
        self.status = status
        self.heap: list[Due] = []
        self.seq = 0
        n = len(outputs)
        self.sounding: list[dict[tuple[int, int], int]] = [dict() for _ in range(n)]  # (ch, pitch) -> count
        self.on_sent: list[set[int]] = [set() for _ in range(n)]  # note ids whose note-on went out
        self.lost: list[bool] = [False] * n
        self.lost_keys: list[set[tuple[int, int]]] = [set() for _ in range(n)]  # sounding when the port went
        self.used_channels: set[int] = {int(v[0]) for v in channels.values()}
        self.tempo = ClockMap()
        self.next_tick: list[int | None] = [None] * n  # next clock tick per output (None: not started)
        self.lateness = LateRing()
        self.tempo_arrived = 0.0
        self.handover_late = LateRing()  # how late notes came from the engine (past their deadline)
        self.clock_lateness = LateRing()
        self.losses = 0
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
            if self.status is not None:  # published (and emptied) only where there is a status to publish to
                self.recent.append(late)
        if ok:
            self.sent += 1
            if self.record and o == 0 and msg[0] < Status.SYSTEM:  # channel messages; clock and transport are not file events
                self.log.append((now, bytes(msg)))

    def setup_channels(self, o: int) -> None:
        """Program (and volume) per channel, sent at start and again after a port comes back."""
        for ch, prog, volume in self.channels.values():
            if ch != DRUM_CHANNEL - 1:  # a program change on the GM drum channel picks a kit: leave it
                self._out(o, bytes([Status.PROGRAM_CHANGE | ch, prog & 127]))
            if volume is not None:
                self._out(o, bytes([Status.CONTROL_CHANGE | ch, CC.VOLUME, int(volume) & 127]))

    def panic(self, o: int, keys=None) -> None:
        """Note-offs for what sounds, then all-notes-off, all-sound-off and sustain-off on every channel used."""
        keys = list(self.sounding[o]) if keys is None else list(keys)
        for ch, pitch in keys:
            self._out(o, bytes([Status.NOTE_OFF | ch, pitch, 0]))
        for ch in sorted(self.used_channels):
            for cc in (CC.ALL_NOTES_OFF, CC.ALL_SOUND_OFF, CC.SUSTAIN):
                self._out(o, bytes([Status.CONTROL_CHANGE | ch, cc, 0]))
        self.sounding[o].clear()
        self.on_sent[o].clear()
        self.panics += 1

    # ---- input from the engine ----
    def push(self, deadline: float, order: int, on: bool, o: int, note: NoteEvent, arrived: float) -> None:
        self.seq += 1
        heapq.heappush(self.heap, Due(deadline, order, self.seq, on, o, note, arrived))

    def handle(self, msg) -> str | None:
        """Take one message; "drain" or "abort" when it asks the sender to end."""
        if isinstance(msg, Notes):
            arrived = time.monotonic()  # a note handed over after its deadline is the engine's lateness, not ours
            for ev in msg.events:
                self.used_channels.add(ev.channel)
                if ev.on < arrived:
                    self.handover_late.append(arrived - ev.on)
                for o, lat in enumerate(self.lat):
                    self.push(ev.on + lat, NOTE_ON_AFTER, True, o, ev, arrived)
                    self.push(ev.off + lat, NOTE_OFF_FIRST, False, o, ev, arrived)
        elif isinstance(msg, Tempo):
            self.tempo.add(msg.wall, msg.bpm, msg.beat)
            self.tempo_arrived = time.monotonic()
            if not self.clock_out:
                self.tempo.forget_before(self.tempo_arrived - TEMPO_KEEP_S)
            if self.status is not None:
                self.status[StatusSlot.TEMPO] = msg.bpm
        elif isinstance(msg, Cut):
            self.cut(msg.wall)
        elif isinstance(msg, Close):
            return "drain" if msg.drain else "abort"
        return None

    def cut(self, wall: float) -> None:
        """Drop what starts at/after the cut; end what sounds across it at the cut."""
        now = time.monotonic()
        dropped = {(d.output, d.note.id) for d in self.heap if d.on and d.deadline >= wall + self.lat[d.output]}
        heap = []
        for d in self.heap:
            if (d.output, d.note.id) in dropped:
                continue  # a dropped note-on takes its note-off with it
            if not d.on:
                d.deadline = min(d.deadline, max(wall + self.lat[d.output], now))
            heap.append(d)
        heapq.heapify(heap)
        self.heap = heap
        self.tempo.cut(wall)

    # ---- timing ----
    def next_due(self) -> float:
        due = self.heap[0].deadline if self.heap else math.inf
        if self.clock_out and self.tempo.segs:
            for o in range(len(self.outputs)):
                due = min(due, self._tick_deadline(o))
        return due

    def _tick_deadline(self, o: int) -> float:
        k = self.next_tick[o]
        if k is None:
            return self.tempo.segs[0].wall + self.lat[o]
        return self.tempo.wall_of_tick(k) + self.lat[o]

    def dispatch(self, now: float) -> None:
        """Send everything whose deadline has come, clock ticks and notes in deadline order."""
        while True:
            note_due = self.heap[0].deadline if self.heap else math.inf
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
            k0 = int(math.ceil(self.tempo.first_tick - 1e-9))
            sixteenths = k0 // TICKS_PER_SIXTEENTH
            self._out(o, song_position(sixteenths))
            self._out(o, bytes([Status.START if sixteenths == 0 else Status.CONTINUE]))
            self.next_tick[o] = k0
        self._out(o, bytes([Status.CLOCK]), max(deadline, self.tempo_arrived), clock=True)
        self.next_tick[o] += 1
        if self.next_tick[o] % PPQN == 0:
            self.tempo.prune(min(k for k in self.next_tick if k is not None))
        if self.status is not None and o == 0:
            self.status[StatusSlot.TICKS] = self.next_tick[o]

    def _send_event(self, d: Due) -> None:
        o, ev = d.output, d.note
        key = (ev.channel, ev.pitch)
        deadline = max(d.deadline, d.arrived)
        if d.on:
            if self.lost[o]:
                return
            if self.sounding[o].get(key, 0) > 0:  # the same key again: end it first so it sounds anew
                self._out(o, bytes([Status.NOTE_OFF | ev.channel, ev.pitch, 0]))
            self._out(o, bytes([Status.NOTE_ON | ev.channel, ev.pitch, ev.velocity]), deadline)
            self.sounding[o][key] = self.sounding[o].get(key, 0) + 1
            self.on_sent[o].add(ev.id)
            return
        if ev.id not in self.on_sent[o]:
            return  # its note-on was dropped, or a panic already ended it
        self.on_sent[o].discard(ev.id)
        left = self.sounding[o].get(key, 0) - 1
        if left <= 0:
            self.sounding[o].pop(key, None)
            self._out(o, bytes([Status.NOTE_OFF | ev.channel, ev.pitch, 0]), deadline)
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
                    self.losses += 1
            elif out.reopen():
                self.lost[o] = False
                self.reconnects += 1
                self.panic(o, self.lost_keys[o])  # whatever the device still holds from before: silence it first
                self.lost_keys[o] = set()
                self.setup_channels(o)
                # the clock carries on: tell the device where we are
                if self.next_tick[o] is not None:
                    self._out(o, song_position(self.next_tick[o] // TICKS_PER_SIXTEENTH))
                    self._out(o, bytes([Status.CONTINUE]))
            if self.status is not None:
                self.status[StatusSlot.OUTPUTS + o] = lost_state(out) if self.lost[o] else OutputState.OK
                self.status[StatusSlot.LOSSES] = self.losses

    def publish(self) -> None:
        if self.status is None:
            return
        r = sorted(self.recent[-512:])
        self.recent = r[-512:] if len(self.recent) > 4096 else self.recent
        s = self.status
        s[StatusSlot.SENT] = self.sent
        if r:
            s[StatusSlot.LATE_P99_MS] = r[min(len(r) - 1, int(0.99 * len(r)))] * 1000
            s[StatusSlot.LATE_MAX_MS] = r[-1] * 1000
        s[StatusSlot.RECONNECTS] = self.reconnects
        self.recent = []

    def stop(self) -> None:
        """Clock stop with the position, then silence every output."""
        for o in range(len(self.outputs)):
            if self.next_tick[o] is not None:
                self._out(o, bytes([Status.STOP]))
                self._out(o, song_position(self.next_tick[o] // TICKS_PER_SIXTEENTH))
            self.panic(o)
        self.heap = []
        if self.link is not None:
            self.link.close()
            self.link = None

    def result(self) -> SendReport:
        return SendReport(lateness=self.lateness.values(), handover_late=self.handover_late.values(),
                          clock_lateness=self.clock_lateness.values(), lateness_count=self.lateness.n,
                          handover_count=self.handover_late.n, clock_count=self.clock_lateness.n,
                          lateness_max=self.lateness.max, log=self.log, reconnects=self.reconnects,
                          panics=self.panics, priority=self.priority.label)


def lost_state(out) -> OutputState:
    """Why an output is lost, as far as it can tell (JACK outputs tell a removed connection and a dead server)."""
    kind = getattr(out, "fault_kind", "port")
    return {"connection": OutputState.DISCONNECTED, "server": OutputState.SERVER_GONE}.get(kind, OutputState.PORT_GONE)


# The sender is a process of its own: a signal asks it to silence everything and go.
_abort = threading.Event()


def _on_abort(signum, frame) -> None:
    _abort.set()


def child_main(fd: int) -> None:
    """Entry point of the sender interpreter: the setup arrives first on the socket."""
    import faulthandler  # noqa: PLC0415
    from multiprocessing.connection import Connection  # noqa: PLC0415

    faulthandler.enable()  # a crash inside a MIDI backend leaves a Python traceback on stderr
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, _on_abort)
    conn = Connection(fd)
    try:
        setup = decode(conn.recv_bytes())
    except (EOFError, OSError, ValueError):
        return
    if not isinstance(setup, Setup):
        return
    with open(setup.status_path, "r+b") as f:
        status_map = mmap.mmap(f.fileno(), 0)
    status = memoryview(status_map).cast("d")
    try:
        sender_main(conn, status, setup)
    finally:
        status.release()
        status_map.close()


def sender_main(conn, status, setup: Setup) -> None:
    """The sender process: open the outputs, then send on time until told to stop (or the engine dies)."""
    from cuecast.streams.midi_outputs import PortError, open_output  # noqa: PLC0415

    outputs = []
    try:
        for spec in setup.outputs:
            outputs.append(open_output(spec, setup.client_name, **setup.synth_options))
    except PortError as e:
        for out in outputs:
            out.close()
        conn.send_bytes(encode(Failed(str(e))))
        return
    except Exception as e:  # a backend failing in a way we did not foresee: still one line for the user
        for out in outputs:
            out.close()
        conn.send_bytes(encode(Failed(f"cannot open MIDI output: {type(e).__name__}: {e}")))
        return
    try:  # Link's network threads start here, before the priority rises: they need none
        leader = LinkLeader() if setup.link else None
    except Exception as e:
        for out in outputs:
            out.close()
        conn.send_bytes(encode(Failed(f"cannot join an Ableton Link session: {type(e).__name__}: {e}")))
        return
    priority = _raise_priority(setup.realtime)
    s = Sender(outputs, setup.latency_s, setup.channels, setup.clock_out, setup.record, status, priority)
    s.link = leader
    status[StatusSlot.PRIORITY] = priority
    status[StatusSlot.ALIVE] = 1.0
    for o in range(len(outputs)):
        s.setup_channels(o)
        status[StatusSlot.OUTPUTS + o] = 1.0
    gc.collect()
    gc.disable()  # no collector pauses in the sender; it makes little garbage and no cycles
    conn.send_bytes(encode(Ready(priority.label)))
    mode = "run"
    try:
        mode = _loop(s, conn)
    finally:
        s.stop()
        time.sleep(FLUSH_S)  # let the backend deliver the last messages before the ports go
        status[StatusSlot.ALIVE] = 0.0
        if mode != "eof":  # report before closing the ports: a backend that crashes on close loses nothing
            try:
                conn.send_bytes(encode(Closed(s.result())))
            except (BrokenPipeError, OSError):
                pass
        for out in outputs:
            out.close()


def _loop(s: Sender, conn) -> str:
    draining = False
    drain_until = math.inf
    while True:
        if _abort.is_set():
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
                        r = s.handle(decode(conn.recv_bytes()))
                        if r == "abort":
                            return "abort"
                        if r == "drain":
                            draining = True
                            drain_until = time.monotonic() + 60.0
                        if not conn.poll(0):
                            break
                except (EOFError, OSError, ValueError):
                    return "eof"  # the engine's process is gone: silence everything and go
            continue
        while time.monotonic() < due:  # the last stretch: spin
            pass
        s.dispatch(time.monotonic())


