"""The arranger backend driven one beat at a time with StepPlans made here, like the conductor makes them:
a fixed tempo, a new bar at every boundary, a partial step up to a boundary that falls between beats."""

from __future__ import annotations

import math

import pytest

from cuecast.models.music import metrics as M
from cuecast.models.music.arranger import Arranger
from cuecast.models.music.config import GeneratorConfig
from cuecast.types import INSTRUMENTS, StepPlan


def drive(gen, valence, arousal, seconds, cuts=(), bpm=100.0, bpb=4, emotion=None):
    """Notes of `seconds` of music; `emotion(t) -> (v, a)` overrides the fixed valence/arousal."""
    beat_s = 60.0 / bpm
    cuts = sorted(cuts)
    notes, t, next_beat, beat, bib = [], 0.0, 0.0, 0, 0
    pending = list(cuts)
    on_grid = True
    while t < seconds - 1e-9:
        at_b = bool(pending) and abs(pending[0] - t) < 1e-9
        if at_b:
            pending.pop(0)
            on_grid = abs(next_beat - t) < 1e-9
            next_beat, bib = t, 0
        if abs(next_beat - t) < 1e-9:
            next_beat = t + beat_s
        nb = pending[0] if pending else None
        t1 = min(next_beat, nb if nb is not None else math.inf, seconds)
        v, a = emotion(t) if emotion else (valence, arousal)
        plan = StepPlan(t0=t, t1=t1, tempo_bpm=bpm, beat=beat, beat_in_bar=bib, beats_per_bar=bpb, valence=v,
                        arousal=a, next_boundary=nb, at_boundary=at_b, on_grid=on_grid if at_b else True)
        out = gen.step(plan)
        assert all(t <= n.start < t1 for n in out), "a note outside its step"
        notes += out
        t = t1
        if abs(t - next_beat) < 1e-9:
            beat, bib = beat + 1, (bib + 1) % bpb
    return notes


def irregular(seconds, seed):
    import random

    rng = random.Random(seed)
    out, t = [], rng.uniform(0.7, 5)
    while t < seconds - 0.7:
        out.append(round(t, 3))
        t += rng.uniform(0.7, 5)
    return out


def test_deterministic_by_seed_and_different_across_seeds():
    a = drive(Arranger(GeneratorConfig(seed=3)), 0.3, 0.2, 20, [5.3, 11.1])
    b = drive(Arranger(GeneratorConfig(seed=3)), 0.3, 0.2, 20, [5.3, 11.1])
    c = drive(Arranger(GeneratorConfig(seed=4)), 0.3, 0.2, 20, [5.3, 11.1])
    assert a == b
    assert a != c
    gen = Arranger(GeneratorConfig(seed=9))
    first = drive(gen, -0.5, 0.6, 10)
    gen.reset(9)
    assert drive(gen, -0.5, 0.6, 10) == first


@pytest.mark.parametrize("bpm", [60, 90, 123, 160])
@pytest.mark.parametrize("bpb", [3, 4])
def test_chord_exactly_at_every_boundary(bpm, bpb):
    cuts = irregular(40, bpm + bpb)
    for v, a in ((-0.7, -0.8), (0.6, 0.1), (0.1, 0.9)):
        notes = drive(Arranger(GeneratorConfig(seed=bpm)), v, a, 40, cuts, bpm=bpm, bpb=bpb)
        for c in cuts:
            at = [n for n in notes if n.start == c and n.instrument in ("chords", "pad")]
            assert len({n.pitch % 12 for n in at}) >= 3, f"no boundary chord at {c}"
            assert all(n.end - n.start >= 0.5 for n in at)
        al = M.cut_alignment(notes, cuts, 40)
        assert al["hit_rate"] == 1.0
        assert set(al["offsets"]) == {0.0}


@pytest.mark.parametrize("bpm", [60, 100, 140, 160])
def test_chord_onsets_stay_sparse_away_from_cuts(bpm):
    rates = []
    for seed, (v, a) in enumerate(((-0.8, -0.8), (-0.6, 0.8), (0.0, 0.0), (0.7, -0.3), (0.8, 0.9))):
        cuts = irregular(60, seed)
        notes = drive(Arranger(GeneratorConfig(seed=seed)), v, a, 60, cuts, bpm=bpm)
        rates.append(M.cut_alignment(notes, cuts, 60, seed=seed)["random_rate"])
    assert max(rates) < 0.35
    assert sum(rates) / len(rates) <= 0.2


def test_valence_sets_the_key():
    def score(v):
        return sum(M.key_score(drive(Arranger(GeneratorConfig(seed=s)), v, 0.0, 30)) for s in range(6)) / 6

    hi, mid, lo = score(0.9), score(0.0), score(-0.9)
    assert hi > lo + 0.2
    assert hi > mid > lo


def test_arousal_sets_density_velocity_and_drums():
    def run(a):
        return drive(Arranger(GeneratorConfig(seed=1)), 0.2, a, 30)

    calm, mid, wild = run(-0.9), run(0.0), run(0.9)
    nps = [M.notes_per_second(n, 30) for n in (calm, mid, wild)]
    assert nps[0] < nps[1] < nps[2]
    vel = [sum(n.velocity for n in ns) / len(ns) for ns in (calm, mid, wild)]
    assert vel[0] < vel[1] < vel[2]
    assert not [n for n in calm if n.instrument == "drums"]  # very calm: no drums
    assert len({n.pitch for n in wild if n.instrument == "drums"}) >= 3


def test_every_note_valid_and_all_instruments_used():
    notes = []
    for v, a in ((-0.9, -0.9), (0.9, 0.9), (0.0, 0.5), (-0.5, 0.2)):
        notes += drive(Arranger(GeneratorConfig(seed=2)), v, a, 25, irregular(25, 2), bpm=75 + 60 * (a + 1) / 2)
    assert M.invalid_notes(notes) == []
    assert set(INSTRUMENTS) <= {n.instrument for n in notes}


def test_bass_and_melody_play_one_note_at_a_time():
    for a in (-0.5, 0.0, 0.4, 0.9):
        notes = drive(Arranger(GeneratorConfig(seed=3)), 0.3, a, 40, irregular(40, 3), bpm=90 + 40 * a)
        for inst in ("melody", "bass"):
            line = sorted((n for n in notes if n.instrument == inst), key=lambda n: n.start)
            assert line, inst
            assert all(q.start >= p.end - 1e-6 for p, q in zip(line, line[1:])), (inst, a)


def test_emotion_moving_during_the_piece_changes_mode():
    def emotion(t):  # bright for 30 s, then dark
        return (0.9, 0.0) if t < 30 else (-0.9, 0.0)

    notes = drive(Arranger(GeneratorConfig(seed=5)), 0, 0, 60, [30.0], emotion=emotion)
    first = [n for n in notes if n.start < 30]
    second = [n for n in notes if n.start >= 30]
    assert M.key_score(first) > M.key_score(second)


def test_known_boundary_ahead_gets_a_fill_and_a_clean_cut():
    notes = drive(Arranger(GeneratorConfig(seed=0)), 0.4, 0.5, 12, [8.0], bpm=120)
    # the beat before the cut has a drum fill: sixteenth snare/tom hits getting louder
    drums = (38, 45, 47, 50)
    fill = [n for n in notes if n.pitch in drums and n.instrument == "drums" and 7.5 <= n.start < 8.0]
    ordinary = [n for n in notes if n.pitch in drums and n.instrument == "drums" and 5.5 <= n.start < 6.0]
    assert len(fill) == 4 > len(ordinary)
    assert [n.velocity for n in fill] == sorted(n.velocity for n in fill)
    # nothing pitched from before the cut rings into it
    assert not [n for n in notes if n.instrument != "drums" and n.start < 8.0 < n.end]


def test_boundary_hit_is_accented_and_fades_are_softer():
    plan = dict(t1=0.5, tempo_bpm=120, beat=0, beat_in_bar=0, beats_per_bar=4, valence=0.3, arousal=0.4,
                at_boundary=True)
    gen = Arranger(GeneratorConfig(seed=1))
    drive(gen, 0.3, 0.4, 4.0)
    hard = gen.step(StepPlan(t0=4.0, **{**plan, "t1": 4.5}))
    ordinary = drive(Arranger(GeneratorConfig(seed=1)), 0.3, 0.4, 4.0)
    mean = lambda ns: sum(n.velocity for n in ns if n.instrument != "drums") / sum(n.instrument != "drums" for n in ns)
    assert mean(hard) > mean(ordinary) + 10
    assert {49, 36} <= {n.pitch for n in hard if n.instrument == "drums"}  # crash and kick
    gen = Arranger(GeneratorConfig(seed=1))
    drive(gen, 0.3, 0.4, 4.0)
    fade = gen.step(StepPlan(t0=4.0, boundary_kind="fade", **{**plan, "t1": 4.5}))
    assert 49 not in {n.pitch for n in fade if n.instrument == "drums"}
    assert mean(fade) < mean(hard)
    assert len({n.pitch % 12 for n in fade if n.start == 4.0 and n.instrument != "drums"}) >= 3


def test_rewind_replays_from_a_surprise_cut():
    gen = Arranger(GeneratorConfig(seed=7))
    before = drive(gen, 0.5, 0.3, 10)
    gen.rewind(6.3)  # a cut inside music already generated
    plan = StepPlan(t0=6.3, t1=6.9, tempo_bpm=100, beat=10, beat_in_bar=0, beats_per_bar=4, valence=0.5,
                    arousal=0.3, at_boundary=True, on_grid=False)
    hit = gen.step(plan)
    assert len({n.pitch % 12 for n in hit if n.start == 6.3 and n.instrument != "drums"}) >= 3
    assert min(n.start for n in hit) == 6.3
    # rewinding to a step start and stepping the same plans again gives the same notes
    gen = Arranger(GeneratorConfig(seed=7))
    plans = [StepPlan(t0=0.6 * k, t1=0.6 * (k + 1), tempo_bpm=100, beat=k, beat_in_bar=k % 4, beats_per_bar=4,
                      valence=0.5, arousal=0.3) for k in range(16)]
    first = [gen.step(p) for p in plans]
    gen.rewind(plans[9].t0)
    again = [gen.step(p) for p in plans[9:]]
    assert again == first[9:]
    assert len(sum(first, [])) > 50 and before


def test_bad_plan_is_a_clear_error():
    with pytest.raises(ValueError, match="t1 > t0"):
        Arranger().step(StepPlan(t0=1.0, t1=1.0, tempo_bpm=100, beat=0, beat_in_bar=0, beats_per_bar=4,
                                 valence=0, arousal=0))


def test_eval_tool_runs_through_compose():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "eval_generator.py"
    spec = importlib.util.spec_from_file_location("eval_generator", path)
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    result = ev.run("arranger", seconds=12, grid=2, seeds=(0,))
    s = result["summary"]
    assert s["invalid_notes"] == 0
    assert s["hit_rate_regular"] >= 0.9 and s["hit_rate_irregular"] >= 0.9
    assert s["random_rate_irregular"] < 0.35
    assert s["spearman_arousal_nps"] > 0.5
    assert "valence" in ev.table(result)
    # the energy a listener hears and the balance of the parts, per arousal: a part's level is its notes' mean
    # velocity, undefined (NaN) only when it is silent
    rows = ev.energy_table(result).splitlines()
    assert all(p in rows[0] for p in ev.PARTS) and len(rows) == 2 + 2
    for c in result["cells"]:
        assert all((c[f"notes_{p}"] > 0) == (0 < c[f"level_{p}"] <= 127) for p in ev.PARTS)
    assert sum(c["notes_chords"] + c["notes_pad"] for c in result["cells"]) > 0 < sum(c["notes_bass"] for c in result["cells"])


def test_every_cut_changes_the_harmony():
    """The chord on a cut shares at most two pitch classes with the chord sounding just before it."""
    cuts = irregular(40, 5)
    for v, a in ((-0.6, -0.5), (0.6, 0.5)):
        notes = drive(Arranger(GeneratorConfig(seed=5)), v, a, 40, cuts)
        for c in cuts:
            after = {n.pitch % 12 for n in notes if n.start == c and n.instrument in ("chords", "pad")}
            before = {n.pitch % 12 for n in notes if n.instrument in ("chords", "pad") and n.start < c - 1e-6 < n.end
                      or n.instrument in ("chords", "pad") and c - 0.6 < n.start < c}
            assert after != before, f"the same chord across the cut at {c}"
