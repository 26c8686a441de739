"""While a live stream is gone, the music is held, then fades: a NoteSink in front of the real one.

A network or WebRTC source says since when its picture has been missing (`stalled_since()`, a
time.monotonic() or None). The conductor keeps generating from the engine's clock all along, so the music
never stops with a hiccup; only when the outage lasts does it fade, as a DJ would pull the fader down on a
dead feed, and it comes back at full level with the stream.
"""

from __future__ import annotations

import time
from typing import Callable

from cuecast.types import Note, NoteSink

HOLD_S = 4.0  # an outage shorter than this is not heard at all
FADE_S = 8.0  # then the level falls to nothing over this long
RETURN_S = 1.0  # and climbs back over this long once the picture is back


class FadeOnStall:
    def __init__(self, inner: NoteSink, stalled_since: Callable[[], float | None], hold_s: float = HOLD_S,
                 fade_s: float = FADE_S, now: Callable[[], float] = time.monotonic):
        self.inner = inner
        self.stalled_since = stalled_since
        self.hold_s, self.fade_s = hold_s, fade_s
        self.now = now
        self._back_at: float | None = None
        self._low = 1.0  # the level when the picture came back, to climb from
        self.faded_notes = 0  # notes left out because the level was zero

    def level(self) -> float:
        """1.0 while the picture comes (and through the hold), falling to 0 over the fade."""
        now = self.now()
        since = self.stalled_since()
        if since is not None:
            self._back_at = None
            gone = now - since - self.hold_s
            self._low = 1.0 if gone <= 0 else max(0.0, 1.0 - gone / self.fade_s)
            return self._low
        if self._low < 1.0:
            if self._back_at is None:
                self._back_at = now
            climbed = self._low + (1.0 - self._low) * min(1.0, (now - self._back_at) / RETURN_S)
            if climbed >= 1.0:
                self._low = 1.0
            return climbed
        return 1.0

    def tempo(self, t: float, bpm: float, beat: float) -> None:
        self.inner.tempo(t, bpm, beat)

    def notes(self, notes: list[Note]) -> None:
        level = self.level()
        if level < 1.0:
            kept = [Note(n.start, n.end, n.pitch, max(1, round(n.velocity * level)), n.instrument)
                    for n in notes if n.velocity * level >= 1.0]
            self.faded_notes += len(notes) - len(kept)
            notes = kept
        if notes:
            self.inner.notes(notes)

    def cut_at(self, t: float) -> None:
        self.inner.cut_at(t)

    def close(self) -> None:
        self.inner.close()
