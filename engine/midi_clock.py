"""The MIDI clock's tempo map: clock ticks (24 per quarter note) against wall time.

Built in the sender process from the conductor's tempo changes (Tempo messages, the TempoPoints of the
music turned into wall time), it tells when each clock tick is due and where the clock is at any moment.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from cuecast.midi import PPQN


class ClockSegment(NamedTuple):
    wall: float  # where the segment starts, time.monotonic()
    tick: float  # the clock position there
    rate: float  # ticks per second


class ClockMap:
    """The tick count only moves forward: when a tempo change puts a beat where the ticks already sent
    cannot follow (a boundary that fell between beats), the clock carries on from where it is at the new
    tempo instead of jumping."""

    def __init__(self) -> None:
        self.segs: list[ClockSegment] = []
        self.beat_offset = 0.0  # conductor beat + offset = clock beat

    def position(self, wall: float) -> float:
        """The clock position (ticks) at wall time `wall`."""
        seg = self.segment_at(wall) or self.segs[0]
        return seg.tick + (wall - seg.wall) * seg.rate

    def add(self, wall: float, bpm: float, beat: float) -> None:
        self.segs = [s for s in self.segs if s.wall < wall]
        want = (beat + self.beat_offset) * PPQN
        if self.segs:
            here = self.position(wall)
            if abs(want - here) > 0.5:  # off the grid: keep the clock continuous
                self.beat_offset = here / PPQN - beat
                want = here
        self.segs.append(ClockSegment(wall, want, bpm * PPQN / 60.0))

    def cut(self, wall: float) -> None:
        keep = [s for s in self.segs if s.wall <= wall]
        self.segs = keep or self.segs[:1]

    def prune(self, k_min: int) -> None:
        """Forget segments wholly before tick k_min (so a night-long run stays fast)."""
        while len(self.segs) > 2 and self.segs[1].tick <= k_min and self.segs[1].wall < time.monotonic() - 1.0:
            self.segs.pop(0)

    def forget_before(self, wall: float) -> None:
        """Forget segments that ended before `wall`: with no clock ticks going out (which prune as they
        pass), nothing else bounds the map, and the conductor adds a segment at every plan step."""
        while len(self.segs) > 2 and self.segs[1].wall < wall:
            self.segs.pop(0)

    def segment_at(self, wall: float) -> ClockSegment | None:
        """The segment playing at wall time `wall` (None before the first one starts)."""
        now = None
        for seg in self.segs:
            if seg.wall <= wall:
                now = seg
            else:
                break
        return now

    def wall_of_tick(self, k: int) -> float:
        seg = self.segs[0]
        for s in self.segs:
            if s.tick <= k + 1e-9:
                seg = s
            else:
                break
        return seg.wall + (k - seg.tick) / seg.rate

    @property
    def first_tick(self) -> float:
        return self.segs[0].tick
