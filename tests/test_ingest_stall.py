"""While a stream is gone the music is held, then fades, and comes back with the picture (engine/stall.py)."""

from __future__ import annotations

from cuecast.engine.stall import FADE_S, HOLD_S, RETURN_S, FadeOnStall
from cuecast.types import Note


class Kept:
    def __init__(self):
        self.got, self.cuts, self.closed = [], [], False

    def tempo(self, t, bpm, beat):
        pass

    def notes(self, notes):
        self.got.extend(notes)

    def cut_at(self, t):
        self.cuts.append(t)

    def close(self):
        self.closed = True


def test_held_then_faded_then_back():
    clock = {"now": 100.0, "since": None}
    kept = Kept()
    sink = FadeOnStall(kept, lambda: clock["since"], now=lambda: clock["now"])
    note = lambda t: [Note(t, t + 0.5, 60, 100, "chords")]  # noqa: E731
    sink.notes(note(0.0))
    clock["since"] = 100.0  # the picture stops
    clock["now"] = 100.0 + HOLD_S - 0.1
    sink.notes(note(1.0))  # held: full level
    clock["now"] = 100.0 + HOLD_S + FADE_S / 2
    sink.notes(note(2.0))  # half way down
    clock["now"] = 100.0 + HOLD_S + FADE_S + 1
    sink.notes(note(3.0))  # silent: left out
    clock["since"] = None  # the picture is back
    sink.notes(note(4.0))  # climbing from nothing
    clock["now"] += RETURN_S
    sink.notes(note(5.0))
    sink.cut_at(5.5)
    sink.close()
    assert [(n.start, n.velocity) for n in kept.got] == [(0.0, 100), (1.0, 100), (2.0, 50), (5.0, 100)]
    assert sink.faded_notes == 2 and kept.cuts == [5.5] and kept.closed
