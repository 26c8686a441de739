"""Lookahead 0: the engine takes a hard cut on its own frame, and the live clock follows the frames' arrival."""

from __future__ import annotations

import asyncio

import pytest

from cuecast.engine.clock import SETTLE_S, FastClock, RealtimeClock
from cuecast.engine.config import load_config
from cuecast.engine.pipeline import Engine
from cuecast.engine.stages import build_stages
from cuecast.streams.midi_file import MidiFileSink
from cuecast.streams.video import FileSource
from cuecast.types import is_chord_onset


class WatchedSink(MidiFileSink):
    """The real MIDI file sink; every re-plan is noted with the newest frame analysed when it came."""

    def __init__(self, clock):
        super().__init__()
        self.clock, self.replans = clock, []

    def cut_at(self, t):
        self.replans.append((t, self.clock.t_in))
        super().cut_at(t)


def run_engine(path, overrides):
    cfg = load_config("vj", {"conductor.use_forecast": False, **overrides})
    clock = FastClock(cfg.conductor.lookahead_s)
    sink = WatchedSink(clock)
    source = FileSource(path, cfg.source.analysis_width, audio=False)
    engine = Engine(cfg, source, sink, clock, build_stages(cfg))
    timeline = asyncio.run(engine.run())
    return timeline, sink


def test_a_hard_cut_is_replanned_on_its_own_frame_at_lookahead_zero(cut_clip, one_torch_thread):
    path, cuts = cut_clip
    timeline, sink = run_engine(path, {})
    assert [round(b.t, 3) for b in timeline.boundaries if b.kind == "hard"] == pytest.approx(cuts, abs=0.041)
    for cut in (b.t for b in timeline.boundaries):
        at = [t_in for t, t_in in sink.replans if t == pytest.approx(cut)]
        assert at == [pytest.approx(cut)], (cut, sink.replans)  # decided on the cut frame, once
        assert is_chord_onset(list(sink.notes), cut)
    assert "early_cuts_refused" not in timeline.meta


def test_with_a_lookahead_the_detector_confirmation_is_awaited(cut_clip, one_torch_thread):
    path, cuts = cut_clip
    timeline, sink = run_engine(path, {"conductor.lookahead_s": 0.5})
    # music runs up to a beat past the horizon, so some cuts still fall in it: re-planned on the confirmation
    replans = [(t, t_in) for t, t_in in sink.replans if t < timeline.duration - 1e-6]  # not the end's
    assert replans and all(t_in == pytest.approx(t + 0.04) for t, t_in in replans)
    notes = list(sink.notes)
    assert all(is_chord_onset(notes, b.t) for b in timeline.boundaries)


def test_live_clock_follows_the_earliest_arrival_while_the_source_settles():
    clock = RealtimeClock(0.0, monotonic=lambda: 0.0)
    clock.arrived(0.0, 100.0)  # the first frame came late: opening the file, the first decode
    assert clock.wall_of(1.0) == pytest.approx(101.0)
    clock.arrived(0.04, 100.02)  # the next one shows where the source's pace really is
    assert clock.wall_of(1.0) == pytest.approx(100.98)
    clock.arrived(0.08, 100.2)  # a late frame does not pull the music later
    assert clock.wall_of(1.0) == pytest.approx(100.98)
    clock.arrived(SETTLE_S + 0.5, 100.0 + SETTLE_S)  # settled: an early burst after a stall moves nothing
    assert clock.wall_of(1.0) == pytest.approx(100.98)
