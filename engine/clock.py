"""Clocks: where the playhead is, in media time.

The live edge t_in is the newest analysed frame; the playhead is t_play = t_in - L. Offline, the playhead
follows the input as fast as decoding allows. Live, it follows the wall clock from the first frame, so a
stalled input does not stall the music, and `wall_of` tells the scheduler when to send a media time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

SETTLE_S = 1.0  # media seconds from the first frame during which the live clock follows the earliest arrival
TICK_S = 0.02  # live: how often the music is planned ahead while no frame comes


class FastClock:
    """Offline render: the playhead is the live edge minus the lookahead, no waiting. Everything not yet
    written can still change, and the piece is always played out to the end of the input."""

    realtime = False

    def __init__(self, lookahead: float):
        self.lookahead = lookahead
        self.t_in = 0.0
        self.started = False

    def arrived(self, t: float, wall: float) -> None:
        pass  # arrival does not matter when nothing waits for the wall clock

    def observe(self, t_in: float) -> None:
        self.started = True
        self.t_in = max(self.t_in, t_in)

    def playhead(self) -> float:
        return self.t_in - self.lookahead

    def editable_from(self) -> float | None:
        return None

    def stop_at(self, stopped: bool) -> float | None:
        return None

    async def keep_time(self, plan: Callable[[], Awaitable[None]], stopping: Callable[[], bool]) -> None:
        return None  # the frames drive the plan


class RealtimeClock:
    """Live: media time advances with the wall clock from the first frame's arrival.

    wall_of(t) is the time.monotonic() at which media time t is played: the arrival of the first
    frame plus its media offset plus the lookahead (the picture is delayed by L downstream). The engine
    anchors the clock on the frames' arrival (anchor); without that, at the first frame analysed.
    """

    realtime = True

    def __init__(self, lookahead: float, monotonic=time.monotonic):
        self.lookahead = lookahead
        self._now = monotonic
        self._anchor: tuple[float, float] | None = None  # (media time, wall time) of a frame's arrival
        self._first_t = 0.0
        self.t_in = 0.0

    def arrived(self, t: float, wall: float) -> None:
        """Pin media time t to the wall time its frame arrived (Frame.arrived); the engine calls this for
        every frame. The picture is on screen from its arrival, so the music must not also carry the analysis's
        start-up. A source's first frames come late (opening, the first decode, a stream's probe, which hands
        over its first second or so at once): for SETTLE_S, and for as long as no music has played (the
        first L seconds), the clock follows the earliest arrival; after that it holds still, so a burst
        after a stall moves nothing."""
        if self._anchor is None:
            self._anchor, self._first_t = (t, wall), t
        elif wall - t < self._anchor[1] - self._anchor[0] and (
                t - self._first_t < SETTLE_S or wall < self.wall_of(self._first_t)):
            self._anchor = (t, wall)

    def observe(self, t_in: float) -> None:
        if self._anchor is None:
            self._anchor = (t_in, self._now())
        self.t_in = max(self.t_in, t_in)

    @property
    def started(self) -> bool:
        return self._anchor is not None

    def wall_of(self, t: float) -> float:
        if self._anchor is None:
            raise RuntimeError("the clock starts with the first frame")
        t0, w0 = self._anchor
        return w0 + (t - t0) + self.lookahead

    def media_now(self) -> float:
        """The media time being played right now."""
        if self._anchor is None:
            return 0.0
        t0, w0 = self._anchor
        return t0 + (self._now() - w0) - self.lookahead

    def playhead(self) -> float:
        return self.media_now()

    def editable_from(self) -> float | None:
        return self.media_now()  # what is playing now has been sent

    def stop_at(self, stopped: bool) -> float | None:
        return self.media_now() if stopped else None  # stopped: end the music now, not at the input's end

    async def keep_time(self, plan: Callable[[], Awaitable[None]], stopping: Callable[[], bool]) -> None:
        """Keep the music going ahead of the playhead even when frames stall."""
        while not stopping():
            await asyncio.sleep(TICK_S)
            if self.started:
                await plan()
