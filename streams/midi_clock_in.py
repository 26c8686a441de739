"""Following an external MIDI clock: tempo, start/stop and song position from a master's 24 ppqn ticks."""

from __future__ import annotations

import json
import math
import select
import subprocess
import sys
import threading
import time

from cuecast.midi import Status

from .midi_outputs import OutputSpec, parse_output_spec
from .midi_ports import CLIENT_NAME, PortError


class MidiClockIn:
    """Follows the tempo of an external MIDI clock (24 ppqn) on `rtmidi:NAME`, `jack:NAME` or `virtual:NAME`.

    Receive times come from the MIDI backend's own timestamps (taken where the message arrives, not when
    Python gets round to it); the tempo is a least-squares fit over the last two beats of ticks, so one
    late tick moves it little. `bpm` is None until a beat of ticks has arrived, and again when the clock
    stops (Stop, or no tick for half a second).

    It keeps the master's song position too: Start counts from zero, Song Position Pointer and Continue from
    there, Stop pauses (`running`); `grid_at(wall)` gives the master's next beat after a monotonic wall time,
    with its index from the song start, so the music can stay on the master's grid. Backend timestamps are
    put on the monotonic clock by the earliest poll that saw them (the poll runs every 5 ms). The port itself is
    opened in a child process (midi_clock_port.py), which a crash in the MIDI backend cannot take the engine with.
    """

    WINDOW = 48  # ticks in the tempo fit: two beats
    GRID_WINDOW = 96  # ticks in the grid's fit: four beats (steadier phase; the tempo of a master is steady)
    OFFSET_POLLS = 3000  # polls that took messages (>= 30 s of a running clock) whose earliest look places backend time
    REOPEN_S = 1.0  # a port whose process ended by itself is opened again this often until it opens

    def __init__(self, spec: OutputSpec | str, client_name: str = CLIENT_NAME + "-clock", start_timeout: float = 10.0):
        if isinstance(spec, str):
            spec = parse_output_spec(spec)
        if spec.kind not in ("rtmidi", "jack", "virtual"):
            raise PortError(f"a MIDI clock comes in on rtmidi:NAME, jack:NAME or virtual:NAME (got {spec.text!r})")
        self.spec = spec
        self._ticks: list[float] = []
        self._positions: list[int] = []  # the song position (in ticks) of each tick in _ticks
        self._next_pos: int | None = None  # position of the next tick, once Start or a song position said it
        self._offsets: list[float] = []  # monotonic - backend time, per poll that took messages
        self._last_wall = 0.0
        self.running: bool | None = None  # None: no Start/Stop seen yet (a clock already running counts as running)
        self._resume: tuple[float, float] | None = None  # after a reopen: (wall of the last tick before, tick period)
        self._closed = threading.Event()
        self._client_name, self._start_timeout = client_name, start_timeout
        self._proc = self._start_port()
        self._thread = threading.Thread(target=self._read, name="cuecast-clock-in", daemon=True)
        self._thread.start()

    def _start_port(self) -> subprocess.Popen:
        """The port, opened in a child process (midi_clock_port.py says why); its first line says ready or why not."""
        timeout = self._start_timeout
        proc = subprocess.Popen(
            [sys.executable, "-c", "from cuecast.streams.midi_clock_port import main; main()",
             self.spec.kind, self.spec.name, self._client_name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        first = proc.stdout.readline() if ready else ""
        try:
            said = json.loads(first) if first else {}
        except ValueError:
            said = {}
        if said.get("ready"):
            return proc
        _stop_child(proc)
        if "error" in said:
            raise PortError(str(said["error"]))
        raise PortError(f"the MIDI clock input {self.spec.text!r} did not open within {timeout:.0f} s")

    def _read(self) -> None:
        while True:
            for line in self._proc.stdout:  # ends when the child ends (closed, or it crashed)
                try:
                    batch = json.loads(line)
                    self._take(float(batch["w"]), [(float(t), msg) for t, msg in batch["m"]])
                except (ValueError, KeyError, TypeError):
                    continue
            if self._closed.is_set() or not self._reopen():
                return

    def _reopen(self) -> bool:
        """The port's process ended by itself (its MIDI backend crashed): open the port again, every REOPEN_S until
        it opens or we are closed. The new process's backend clock starts again, so the ticks and their placing
        on the monotonic clock start again; the song position goes on, counting the ticks the gap must have held."""
        bpm, last = self.bpm, self._last_wall
        self._proc.wait()
        while not self._closed.wait(self.REOPEN_S):
            try:
                proc = self._start_port()
            except PortError:
                continue
            if self._closed.is_set():
                _stop_child(proc)
                return False
            self._ticks.clear(), self._positions.clear(), self._offsets.clear()
            self._resume = (last, 60.0 / (24 * bpm)) if bpm else None
            self._proc = proc
            return True
        return False

    def _take(self, wall: float, messages: list[tuple[float, list[int]]]) -> None:
        for t, msg in messages:
            if not msg:
                continue
            if msg[0] != Status.CLOCK:
                self._resume = None  # a transport message after a reopen says the position afresh
            if msg[0] == Status.CLOCK:
                if self._resume is not None and self._next_pos is not None:  # the first tick after a reopen
                    last, period = self._resume
                    self._next_pos += max(0, round((wall - (messages[-1][0] - t) - last) / period) - 1)
                self._resume = None
                if self._next_pos is None:
                    self._next_pos = 0  # joined a running clock: count from here
                if self.running is None:
                    self.running = True  # ticks without a Start seen (it went out before we connected): running
                self._ticks.append(t)
                self._positions.append(self._next_pos)
                del self._ticks[:-self.GRID_WINDOW], self._positions[:-self.GRID_WINDOW]
                self._next_pos += 1
                self._last_wall = wall
            elif msg[0] == Status.START:  # Start: the next tick is the song's first
                self.running, self._next_pos = True, 0
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.CONTINUE:  # Continue: from the song position last given (or where it stopped)
                self.running = True
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.STOP:
                self.running = False
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.SONG_POSITION and len(msg) >= 3:  # Song Position Pointer, in sixteenths (6 ticks each)
                self._next_pos = 6 * ((msg[1] & 0x7F) | (msg[2] & 0x7F) << 7)
        if messages:
            self._offsets.append(wall - messages[-1][0])
            del self._offsets[:-self.OFFSET_POLLS]

    def grid_at(self, wall: float) -> tuple[float, float, int] | None:
        """(bpm, monotonic time of the master's next beat after `wall`, that beat's index from the song start),
        or None while the clock is stopped or not yet known."""
        ticks, pos, offsets = list(self._ticks), list(self._positions), list(self._offsets)
        if self.running is False or len(ticks) < 24 or len(pos) != len(ticks) or not offsets:
            return None
        if time.monotonic() - self._last_wall > 0.5:
            return None
        # medians, not least squares: a burst of late timestamps (a busy machine, a missed audio cycle) moves
        # a few ticks, not the grid
        spans = sorted((ticks[i] - ticks[j]) / (pos[i] - pos[j]) for i in range(len(ticks))
                       for j in (i - 24,) if j >= 0 and pos[i] > pos[j])
        if not spans:
            return None
        period = spans[len(spans) // 2]
        if period <= 0:
            return None
        zeros = sorted(t - p * period for t, p in zip(ticks, pos))  # backend time of song position 0
        t0 = zeros[len(zeros) // 2] + min(offsets)  # on the monotonic clock: the poll closest to its messages
        at = (wall - t0) / period  # the song position (ticks) at `wall`
        beat = math.floor(at / 24 + 0.02) + 1  # "at a beat" counts as on it: the next one after
        return 60.0 / (24 * period), t0 + beat * 24 * period, beat

    @property
    def bpm(self) -> float | None:
        ticks = list(self._ticks)[-self.WINDOW:]  # a snapshot: the poll thread appends meanwhile
        if len(ticks) < 24 or time.monotonic() - self._last_wall > 0.5:
            return None
        n = len(ticks)
        mean_k = (n - 1) / 2
        mean_t = sum(ticks) / n
        num = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(ticks))
        den = sum((k - mean_k) ** 2 for k in range(n))
        period = num / den
        return 60.0 / (24 * period) if period > 0 else None

    def close(self) -> None:
        self._closed.set()
        _stop_child(self._proc)
        self._thread.join(3)


def _stop_child(proc: subprocess.Popen) -> None:
    """Closing its stdin lets the port's child leave (without closing the port); one that hangs is killed."""
    try:
        proc.stdin.close()
        proc.wait(2)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
