"""The conductor: beats, tempo-mapping onto known cuts, off-grid boundaries, re-planning, forecasts."""

import numpy as np
import pytest

from cuecast.engine.conductor import Conductor
from cuecast.engine.config import ConductorConfig
from cuecast.models.music.arranger import Arranger
from cuecast.models.music.config import GeneratorConfig
from cuecast.models.music.metrics import cut_alignment
from cuecast.streams.midi_file import MidiFileSink
from cuecast.types import Boundary, EmotionWindow, Forecast, StepPlan, is_chord_onset


class RecordingArranger(Arranger):
    """The real arranger, with the plans it was given kept for inspection."""

    def __init__(self):
        super().__init__(GeneratorConfig())
        self.reset(0)
        self.plans: list[StepPlan] = []
        self.rewinds: list[float] = []

    def step(self, plan):
        self.plans.append(plan)
        return super().step(plan)

    def rewind(self, t):
        self.rewinds.append(t)
        super().rewind(t)


def make(lookahead=3.0, tempo=100.0, **kw):
    gen = RecordingArranger()
    sink = MidiFileSink()
    cfg = ConductorConfig(lookahead_s=lookahead, **kw)
    c = Conductor(cfg, gen, sink, lambda a: tempo)
    c.add_emotion(EmotionWindow(0, 2, (1 / 6,) * 6, 0.3, 0.0))
    return c, gen, sink


def test_steps_tile_time_without_gaps():
    c, gen, _ = make()
    c.finish(10.0)
    t = 0.0
    for p in gen.plans:
        assert p.t0 == pytest.approx(t)
        assert p.t1 > p.t0
        t = p.t1
    assert t == pytest.approx(10.0, abs=1e-6)


def test_tempo_bends_so_a_beat_lands_on_a_known_cut():
    c, gen, sink = make(tempo=100.0)  # beat 0.6 s
    c.add_boundary(Boundary(t=3.1))  # 5.17 beats away: 5 beats at 96.8 bpm land on it (3.2% bend)
    c.finish(6.0)
    at = [p for p in gen.plans if p.at_boundary]
    assert len(at) == 1 and at[0].t0 == pytest.approx(3.1)
    assert at[0].on_grid
    assert at[0].beat_in_bar == 0
    bpms = [bpm for _, bpm, _ in sink.tempo_map]
    assert any(abs(b - 100.0) > 1 for b in bpms) and all(abs(b / 100.0 - 1) <= 0.08 + 1e-9 for b in bpms)


def test_unreachable_cut_lands_off_grid():
    c, gen, _ = make(tempo=100.0, max_tempo_nudge=0.0)
    c.add_boundary(Boundary(t=1.0))  # 1.67 beats: no bend allowed
    c.finish(3.0)
    at = [p for p in gen.plans if p.at_boundary]
    assert at[0].t0 == pytest.approx(1.0) and not at[0].on_grid


def test_every_known_cut_gets_a_chord_and_random_moments_mostly_do_not():
    rng = np.random.default_rng(1)
    cuts = np.cumsum(rng.uniform(1.2, 5.0, size=12)).tolist()
    c, _, sink = make(tempo=118.0)
    for t in cuts:
        c.add_boundary(Boundary(t=t))
    c.finish(cuts[-1] + 3)
    stats = cut_alignment(list(sink.notes), cuts, cuts[-1] + 3)
    assert stats["hit_rate"] >= 0.9
    assert stats["random_rate"] <= 0.35


def test_unplanned_cut_inside_generated_music_replans():
    c, gen, sink = make(lookahead=0.0)
    c.advance(4.0)
    assert any(n.start > 2.5 for n in sink.notes)
    replanned = c.add_boundary(Boundary(t=2.5), now=2.5)
    assert replanned and gen.rewinds == [2.5]
    assert all(n.start < 2.5 or n.start >= 2.5 for n in sink.notes)
    assert not any(n.start >= 2.5 for n in sink.notes)
    assert all(n.end <= 2.5 + 1e-9 for n in sink.notes)
    c.advance(5.0)
    at = [p for p in gen.plans if p.at_boundary]
    assert at and at[-1].t0 == pytest.approx(2.5)


def test_cut_in_the_past_replans_from_now():
    c, gen, sink = make(lookahead=0.0)
    c.advance(4.0)
    c.add_boundary(Boundary(t=2.0), now=2.3)
    assert gen.rewinds == [2.3]


def test_confident_forecast_is_planned_when_lookahead_is_zero():
    c, gen, _ = make(lookahead=0.0, tempo=100.0)
    hazard = np.zeros(40)
    hazard[14] = 0.95  # bin 0.1 s: a cut at ~1.45 s after t=0.5
    c.set_forecast(Forecast(t=0.5, bin_s=0.1, hazard=hazard))
    c.advance(3.0)
    spec = [p for p in gen.plans if p.at_boundary]
    assert spec and spec[0].t0 == pytest.approx(1.95, abs=0.06)
    # the real cut arriving near the forecast does not force a re-plan
    assert not c.add_boundary(Boundary(t=spec[0].t0 + 0.02), now=2.9)


def test_weak_forecast_is_ignored():
    c, gen, _ = make(lookahead=0.0)
    c.set_forecast(Forecast(t=0.0, bin_s=0.1, hazard=np.full(40, 0.005)))
    c.advance(3.0)
    assert not any(p.at_boundary for p in gen.plans)


def peaked_forecast(t, at, p=0.95, bin_s=0.1):
    """A forecast made at media time t that is sure of a cut at about `at`."""
    hazard = np.zeros(40)
    hazard[int((at - t) / bin_s)] = p
    return Forecast(t=t, bin_s=bin_s, hazard=hazard)


def chord_at(sink, t):
    return is_chord_onset(list(sink.notes), t)


def test_real_cut_after_a_wrong_forecast_chord_gets_its_own_chord():
    c, gen, sink = make(lookahead=0.0, tempo=100.0)
    c.set_forecast(peaked_forecast(0.5, 1.95))
    c.advance(2.1)
    assert [p.t0 for p in gen.plans if p.at_boundary] == pytest.approx([1.95], abs=0.06)
    c.set_forecast(None)
    cut = [p.t0 for p in gen.plans if p.at_boundary][0] + 0.2  # the forecast chord landed 0.2 s early
    assert c.add_boundary(Boundary(t=cut), now=cut)
    c.advance(cut + 1.0)
    assert gen.plans[-1].t0 > cut
    assert any(p.at_boundary and p.t0 == pytest.approx(cut) for p in gen.plans)
    assert chord_at(sink, cut)


def test_real_cut_near_a_landed_chord_still_gets_a_chord():
    c, gen, sink = make(lookahead=0.0, tempo=100.0, min_boundary_gap_s=0.6)
    c.advance(2.5)
    assert c.add_boundary(Boundary(t=2.0), now=2.0)
    c.advance(2.6)
    second = 2.45  # within min_boundary_gap_s of the chord that landed at 2.0
    assert c.add_boundary(Boundary(t=second), now=second)
    c.advance(3.5)
    assert chord_at(sink, 2.0) and chord_at(sink, second)


def test_a_forecast_seen_twice_does_not_swallow_a_real_cut():
    # the same forecast on two steps once promoted the planned guess to a known boundary, and the real cut
    # 0.35 s later was merged into it
    c, gen, sink = make(lookahead=0.0, tempo=100.0)
    c.set_forecast(peaked_forecast(0.5, 1.95))
    c.advance(0.7)
    c.advance(1.2)
    assert not c.add_boundary(Boundary(t=2.3), now=1.2)  # ahead of the music: planned, no re-plan
    c.set_forecast(None)
    c.advance(3.5)
    at = [p.t0 for p in gen.plans if p.at_boundary]
    assert at == pytest.approx([2.3])
    assert chord_at(sink, 2.3)


def test_a_forecast_follows_the_newest_forecast():
    c, gen, _ = make(lookahead=0.0, tempo=100.0)
    c.set_forecast(peaked_forecast(0.5, 1.95))
    c.advance(0.7)
    c.set_forecast(peaked_forecast(0.7, 2.45))  # the forecaster changed its mind
    c.advance(3.5)
    at = [p.t0 for p in gen.plans if p.at_boundary]
    assert at == pytest.approx([2.45], abs=0.06)


def test_real_cut_at_a_forecast_still_ahead_moves_it_to_the_real_time():
    c, gen, _ = make(lookahead=0.0, tempo=100.0)
    c.set_forecast(peaked_forecast(0.5, 1.95))
    c.advance(1.0)
    assert not c.add_boundary(Boundary(t=1.99), now=1.0)
    c.advance(3.0)
    assert [p.t0 for p in gen.plans if p.at_boundary] == pytest.approx([1.99])


def test_one_event_from_two_sources_gets_one_chord():
    c, gen, _ = make(lookahead=3.0)
    c.add_boundary(Boundary(t=2.0, kind="hint", source="osc"))
    c.add_boundary(Boundary(t=2.3, source="detector"))  # the detector's view of the announced cut
    c.finish(4.0)
    assert [p.t0 for p in gen.plans if p.at_boundary] == pytest.approx([2.0])


def test_a_cut_seen_late_and_reported_again_gets_one_chord():
    # the analysis fell behind: the chord lands at the playhead, 0.3 s after the cut; the same cut reported
    # again (the detector confirming an early decision) must not start a second chord
    c, gen, _ = make(lookahead=0.0)
    c.advance(3.0)
    assert c.add_boundary(Boundary(t=2.0), now=2.3)
    assert not c.add_boundary(Boundary(t=2.0), now=2.34)
    c.advance(4.0)
    assert [p.t0 for p in gen.plans if p.at_boundary] == pytest.approx([2.3])


def test_advance_after_finish_returns_instead_of_spinning():
    """Live, the planner thread may ask for music past the end after finish(): it must get none, at once."""
    c, gen, _ = make()
    c.finish(4.0)
    n_plans = len(gen.plans)
    assert c.advance(4.3) == [] and c.cursor == pytest.approx(4.0)
    assert len(gen.plans) == n_plans


def behind(c, gen, speed: float):
    """Live with a generator at `speed` x real time: the playhead moves 1/speed s per second of music made."""
    c.now = lambda: sum(p.t1 - p.t0 for p in gen.plans) / speed


def test_behind_the_playhead_the_plan_skips_ahead_on_its_beat_grid():
    c, gen, _ = make(tempo=100.0)  # beat 0.6 s
    behind(c, gen, 0.5)
    c.advance(20.0)
    gaps = [(a.t1, b.t0) for a, b in zip(gen.plans, gen.plans[1:]) if b.t0 > a.t1 + 1e-6]
    tail = c.cursor - gen.plans[-1].t1  # a last skip may end the advance
    assert gaps and c.skips == len(gaps) + (tail > 1e-6)
    assert c.skipped_s == pytest.approx(sum(t0 - t1 for t1, t0 in gaps) + tail)
    for p in gen.plans:  # bars and beat numbers run on through the skips, as the MIDI clock does
        assert p.t0 == pytest.approx(0.6 * p.beat) and p.beat_in_bar == p.beat % 4
    made = 0.0
    for p in gen.plans:  # no step starts more than the tolerance behind the playhead of its time
        assert p.t0 >= made / 0.5 - 0.25 - 1e-6
        made += p.t1 - p.t0


def test_a_cut_in_the_skipped_music_gets_its_chord_late_and_forecasts_there_go():
    c, gen, sink = make(tempo=100.0)
    behind(c, gen, 0.5)
    c.add_boundary(Boundary(t=3.0))
    c.advance(12.0)
    hit = [p for p in gen.plans if p.at_boundary]
    assert len(hit) == 1 and hit[0].t0 > 3.0 and c.landed[-1].cut == 3.0
    assert not any(p.t0 < 3.0 < p.t1 for p in gen.plans)  # the cut fell in a skip, not inside a played step
    assert all(n.end > n.start for n in sink.notes)


def test_a_plan_that_keeps_up_never_skips():
    c, gen, _ = make(tempo=100.0)
    behind(c, gen, 2.0)
    c.finish(10.0)
    assert c.skips == 0
    assert all(a.t1 == pytest.approx(b.t0) for a, b in zip(gen.plans, gen.plans[1:]))


def test_the_section_a_cut_opens_takes_its_emotion_from_the_new_shot_not_a_window_across_the_cut():
    gen = RecordingArranger()
    c = Conductor(ConductorConfig(lookahead_s=3.0), gen, MidiFileSink(), lambda a: 100.0)
    for k in range(16):  # 2 s windows every 0.5 s; bright until the cut at 4.0, dark after it
        start = 0.5 * k
        dark = max(0.0, min(1.0, (start + 2.0 - 4.0) / 2.0))  # the share of the window after the cut
        c.add_emotion(EmotionWindow(start, start + 2.0, (1 / 6,) * 6, 0.6 - 1.2 * dark, 0.0))
    c.add_boundary(Boundary(t=4.0))
    c.finish(8.0)
    at = next(p for p in gen.plans if p.at_boundary)
    assert at.t0 == pytest.approx(4.0)
    assert at.valence == pytest.approx(-0.6)  # the first window wholly after the cut, not the 50/50 one (0.0)
    before = [p for p in gen.plans if p.t1 <= 4.0 + 1e-9]
    assert all(p.valence > 0 for p in before)  # the shot before the cut keeps its own picture


def test_a_shot_shorter_than_a_window_does_not_read_the_picture_after_the_next_cut():
    """Shots of 0.5 s have no 2 s window of their own. The last dark shot of a fast-cut passage took its key from the
    first window starting at its cut, which reads 1.5 s of the bright shot after the passage, and the music turned
    major before the picture did. It keeps the window centred on now."""
    gen = RecordingArranger()
    c = Conductor(ConductorConfig(lookahead_s=3.0), gen, MidiFileSink(), lambda a: 100.0)
    for k in range(24):  # bright, dark from 4.0 to 6.0 in four shots, bright again; each window's valence by its shares
        start = 0.5 * k
        dark = max(0.0, min(start + 2.0, 6.0) - max(start, 4.0)) / 2.0
        c.add_emotion(EmotionWindow(start, start + 2.0, (1 / 6,) * 6, 0.6 - 1.2 * dark, 0.0))
    for t in (4.0, 4.5, 5.0, 5.5, 6.0):
        c.add_boundary(Boundary(t=t))
    c.finish(12.0)
    at = {round(p.t0, 2): p.valence for p in gen.plans if p.at_boundary}
    assert at[5.5] < 0  # the last dark shot: not the bright window [5.5, 7.5) (+0.3)
    assert at[6.0] == pytest.approx(0.6)  # the long bright shot after it: its own first window
