"""Ableton Link (the `link` extra, aalink): the Link session follows the music's tempo and beat."""

from __future__ import annotations

from cuecast.engine.midi_clock import ClockMap, ClockSegment
from cuecast.midi import PPQN


class LinkLeader:
    """cuecast leads, since its tempo comes from the picture: whenever a tempo segment starts, the session
    gets its tempo and the beat of our MIDI clock at that moment (force_beat), so other Link apps bend with
    the conductor's tempo moves and stay in phase with the MIDI clock. Link's clock is the monotonic clock.
    """

    def __init__(self) -> None:
        import asyncio  # noqa: PLC0415
        from aalink import Link  # noqa: PLC0415

        # aalink wants an event loop for its awaitables (sync); the sender awaits nothing, so it never runs
        self._loop = asyncio.new_event_loop()
        self.link = Link(120.0, self._loop)
        self.link.enabled = True
        self.playing: ClockSegment | None = None  # the tempo segment last published

    def follow(self, clock: ClockMap, now: float) -> None:
        seg = clock.segment_at(now)
        if seg is None or seg == self.playing:
            return
        self.playing = seg
        self.link.tempo = seg.rate * 60.0 / PPQN
        self.link.force_beat(clock.position(now) / PPQN)

    def close(self) -> None:
        self.link.enabled = False  # peers see us leave at once
        self._loop.close()
