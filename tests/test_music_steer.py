"""Emotion steering of the transformer's sampling: the pure functions and their effect on a tiny model."""

import math
from dataclasses import replace

import numpy as np
import pytest

from cuecast.models.music import metrics as Mx
from cuecast.models.music import tokens as T
from cuecast.models.music.config import GeneratorConfig
from cuecast.models.music.sample import Guard, on_to_off
from cuecast.models.music.theory import key_correlations
from cuecast.models.music.steer import Steering, density_bias, key_score_gradient, target_notes_per_second

from test_music_generator import Gen, plans, run, tiny_model

C_MAJOR = np.array([6, 0, 4, 0, 5, 4, 0, 6, 0, 3, 0, 2], dtype=float)  # a C major tune's pitch classes


def test_key_score_gradient_says_which_note_moves_the_key_score_which_way():
    g = key_score_gradient(C_MAJOR)
    assert max(abs(g)) == pytest.approx(1.0)
    up, down = np.zeros(12), np.zeros(12)
    up[int(np.argmax(g))] = down[int(np.argmin(g))] = 1.0
    score = lambda h: float(np.subtract(*[x.max() for x in key_correlations(h)]))  # noqa: E731
    assert score(C_MAJOR + up) > score(C_MAJOR) > score(C_MAJOR + down)
    assert not key_score_gradient(np.zeros(12)).any()


def test_density_bias_pushes_towards_the_target():
    assert density_bias(0.0, 5.0, 1.5) > 0 > density_bias(20.0, 5.0, 1.5)
    assert density_bias(5.0, 5.0, 1.5) == pytest.approx(0.0)
    assert density_bias(0.0, 5.0, 0.0) == 0.0
    assert target_notes_per_second(-1) < target_notes_per_second(0) < target_notes_per_second(1)


def test_steering_bias_favours_minor_notes_for_negative_valence():
    s = Steering(mode_strength=2.0, density_strength=0.0, velocity_strength=0.0, balance_strength=0.0)
    t = 0.0
    for pc, n in enumerate(C_MAJOR.astype(int)):
        for _ in range(n):
            s.on_token(T.on_token(3, 60 + pc), t)
            t += 0.1
    sad, happy = s.bias(t, -0.9, math.nan), s.bias(t, 0.9, math.nan)
    g = key_score_gradient(s.pcs)
    minorish, majorish = T.on_token(3, 60 + int(np.argmin(g))), T.on_token(3, 60 + int(np.argmax(g)))
    assert sad[minorish] > sad[majorish] and happy[majorish] > happy[minorish]
    assert sad[T.shift_token(3)] == 0 and sad[T.on_token(0, 38)] == 0  # time and drums are not the mode's


def test_rewind_takes_steering_back_to_the_rewound_time():
    cfg = GeneratorConfig(backend="transformer", seed=5, mode_steer=3.0, density_steer=2.0)
    ps = plans(12)
    gen = Gen(cfg, model=tiny_model())
    run(gen, ps[:8])
    before = list(gen.s.steer.onsets)
    gen.rewind(ps[4].t0)
    after = gen.s.steer.onsets
    assert after and all(t < ps[4].t0 for t, *_ in after)
    assert len(after) < len(before)


def test_density_steering_thins_a_dense_stream():
    """A random-init model plays a note on most ticks; low arousal must make it play far fewer."""
    seconds = 8.0
    ps = plans(16, valence=0.0, arousal=-1.0)
    free = run(Gen(GeneratorConfig(backend="transformer", seed=1, density_steer=0.0), model=tiny_model()), ps)
    steered = run(Gen(GeneratorConfig(backend="transformer", seed=1, density_steer=3.0), model=tiny_model()), ps)
    assert Mx.notes_per_second(steered, seconds) < 0.7 * Mx.notes_per_second(free, seconds)


def test_drum_hits_are_bounded_per_tick_and_beat():
    g = Guard(max_drums_per_tick=2, max_drums_per_beat=3)
    for pitch in (36, 38):
        g.update(T.on_token(0, pitch))
    assert g.mask()[T.on_token(0, 42)]  # two at once: no third
    g.update(T.shift_token(1))
    g.update(T.on_token(0, 42))
    assert g.mask()[T.on_token(0, 46)]  # three in the beat
    g.update(T.shift_token(12))
    assert not g.mask()[T.on_token(0, 46)]  # a beat later the kit is free again


def test_one_pitch_is_not_hammered_forever():
    g = Guard(max_same_share=0.5)
    e4, g4 = T.on_token(2, 64), T.on_token(2, 67)
    for _ in range(3):
        g.update(e4)
        g.update(T.shift_token(2))
        g.update(on_to_off(e4))
        g.update(T.shift_token(4))
    assert g.mask()[e4] and not g.mask()[g4]
    for p in (67, 65, 62, 60):
        g.update(T.on_token(2, p))
        g.update(T.shift_token(2))
        g.update(on_to_off(T.on_token(2, p)))
    assert not g.mask()[e4]  # other notes in between: the melody may come back to it


def test_velocity_steering_asks_soft_when_calm_and_loud_when_excited():
    from cuecast.models.music.steer import target_level

    assert target_level(-1.0) < target_level(0.0) < target_level(1.0)
    calm = Steering(mode_strength=0, density_strength=0, velocity_strength=1.0, balance_strength=0).bias(0.0, 0.0, -0.9)
    wild = Steering(mode_strength=0, density_strength=0, velocity_strength=1.0, balance_strength=0).bias(0.0, 0.0, 0.9)
    soft, loud = T.vel_token(2), T.vel_token(6)
    assert calm[soft] > calm[loud] and wild[loud] > wild[soft]


def test_boundary_help_prepares_accents_and_changes_the_harmony():
    from cuecast.models.music.steer import CutScene, boundary_bias

    tick, beat = 0.5 / 12, 0.5
    assert boundary_bias(float("nan"), tick, beat, 2.0) is None and boundary_bias(3.0, tick, beat, 2.0) is None
    assert boundary_bias(float("nan"), tick, beat, 2.0, CutScene(since_s=0.6)) is None  # a beat after: left alone
    old = CutScene(harmony_before=(0, 4, 7), keys_before=(60, 64, 67), level=3)
    on_cut = boundary_bias(0.0, tick, beat, 2.0, old)
    assert on_cut[T.vel_token(7)] > on_cut[T.on_token(0, 49)]  # the level first, then the hit
    assert on_cut[T.vel_token(7)] > 0 > on_cut[T.vel_token(3)]  # a loud level invited, a soft one not
    assert on_cut[T.shift_token(1)] < 0  # the tick waits for its hit
    # the old chord's C less likely than a D, and the very key struck before least likely
    assert on_cut[T.on_token(3, 60)] < on_cut[T.on_token(3, 72)] < on_cut[T.on_token(3, 62)]
    loud = boundary_bias(0.0, tick, beat, 2.0, CutScene(level=7))
    assert loud[T.on_token(0, 49)] > 0 and loud[T.on_token(0, 36)] > 0  # crash and kick
    assert loud[T.on_token(2, 74)] < 0 < loud[T.on_token(4, 62)]  # the new shot opens on a chord, not the tune
    assert loud[T.on_token(3, 62)] > on_cut[T.on_token(3, 62)]  # once the level is loud, the notes need not wait
    done = boundary_bias(0.0, tick, beat, 2.0, CutScene(level=7, struck_drums=frozenset({57, 36}), struck_pitched=3))
    assert done[T.shift_token(1)] == 0 and done[T.on_token(0, 49)] == 0  # a complete hit: time moves on
    fade = boundary_bias(0.0, tick, beat, 2.0, CutScene(hit=False))
    assert fade[T.on_token(0, 49)] == 0 and fade[T.shift_token(1)] == 0 < fade[T.on_token(4, 62)]  # a new chord, no hit
    before = boundary_bias(0.4, tick, beat, 2.0, CutScene(level=3))
    assert before[T.on_token(2, 72)] < 0 and before[T.on_token(3, 60)] == 0  # melody (guitar) gives way
    assert before[T.on_token(0, 38)] > 0  # snare: a fill
    assert before[T.vel_token(5)] > 0 > before[T.vel_token(2)]  # growing louder
    hold = boundary_bias(0.2, tick, beat, 2.0)
    assert hold[T.on_token(3, 60)] < 0 < hold[on_to_off(T.on_token(3, 60))]  # the last half beat holds still
    assert hold[T.on_token(0, 38)] > 0  # while the fill goes on
    breath = boundary_bias(0.1, tick, beat, 2.0)  # the last sixteenth: nothing struck, the fill too
    assert breath[T.on_token(0, 38)] < 0 and breath[T.on_token(3, 60)] < hold[T.on_token(3, 60)] < 0
    assert boundary_bias(0.1, tick, beat, 2.0, CutScene(known=False)) is None  # a forecast is not prepared for
    after = boundary_bias(float("nan"), tick, beat, 2.0, CutScene(harmony_before=(0, 4, 7), since_s=0.2))
    assert after[T.on_token(3, 60)] < after[T.on_token(3, 62)] == 0  # the new harmony holds for a beat
    assert after[T.on_token(2, 74)] < 0


def test_the_chord_struck_on_a_cut_rings_through_the_beat_after_it():
    """The notes struck on the cut are neither released nor struck again in the beat after it: a re-strike a tick
    later cut the hit's chord to 0.12 s (seed 3 of test_engine_render's clip: a chord heard 0.12 s after the cut)."""
    from cuecast.models.music.steer import CutScene, Steering, boundary_bias

    tick, beat = 0.5 / 12, 0.5
    steer = Steering()
    for tok in (T.on_token(0, 49), T.on_token(4, 62), T.on_token(4, 66), T.on_token(4, 69)):
        steer.on_token(tok, 4.4)  # crash and a D major chord on the cut at 4.4 s
    steer.on_token(T.on_token(3, 50), 4.3)  # before the cut: not the cut's chord
    chord = steer.chord_struck_at(4.4)
    assert set(chord) == {t for k in (62, 66, 69) for t in (T.on_token(4, k), on_to_off(T.on_token(4, k)))}
    after = boundary_bias(float("nan"), tick, beat, 2.0, CutScene(since_s=0.1, cut_chord=chord))
    assert after[on_to_off(T.on_token(4, 66))] < 0 and after[T.on_token(4, 66)] < 0  # held, not re-struck
    assert after[T.on_token(3, 66)] == 0 and after[on_to_off(T.on_token(3, 50))] == 0  # other parts' notes: free


def test_a_cut_changes_the_chord_but_may_keep_the_keys_tonic():
    """In C major after a C major chord, a cut asks for a new chord that may keep C (IV, vi), while E and G are
    held back: without it the only chord avoiding C, E and G is D minor, a minor chord on every bright cut."""
    from cuecast.models.music.steer import CutScene, boundary_bias

    tick, beat = 0.5 / 12, 0.5
    in_c = CutScene(harmony_before=(0, 4, 7), keys_before=(60, 64, 67), level=7, tonic=0)
    for bias in (boundary_bias(0.0, tick, beat, 2.0, in_c), boundary_bias(float("nan"), tick, beat, 2.0, replace(in_c, since_s=0.2))):
        assert bias[T.on_token(3, 64)] < bias[T.on_token(3, 72)] == bias[T.on_token(3, 65)]  # E held back, C (another octave) as F
    no_key = boundary_bias(0.0, tick, beat, 2.0, replace(in_c, tonic=-1))
    assert no_key[T.on_token(3, 72)] < no_key[T.on_token(3, 65)]  # no key yet: the whole old chord held back
    on_c = boundary_bias(0.0, tick, beat, 2.0, in_c)
    assert on_c[T.on_token(3, 60)] < on_c[T.on_token(3, 72)]  # the very key struck before still least likely


def test_the_accent_stands_over_the_level_arousal_asks_for():
    from cuecast.models.music.steer import accent_level, target_level

    assert target_level(-0.9) < accent_level(-0.9) <= accent_level(0.0) <= accent_level(0.9) == 7


def test_balance_invites_the_silent_parts():
    from cuecast.models.music.steer import balance_bias

    melody_only = [2] * 16  # the instruments of the last note-ons: guitar = the melody voice
    b = balance_bias(melody_only, 0.0)
    assert b[T.on_token(2, 72)] < 0 < b[T.on_token(3, 60)] and b[T.on_token(1, 40)] > 0
    assert b[T.shift_token(1)] == 0
    calm, wild = balance_bias(melody_only, -1.0), balance_bias(melody_only, 1.0)
    assert wild[T.on_token(0, 36)] > calm[T.on_token(0, 36)]  # drums grow with arousal


def test_register_leans_up_when_excited_and_down_when_calm():
    from cuecast.models.music.steer import register_bias

    calm, wild = register_bias(-0.9), register_bias(0.9)
    high, low = T.on_token(2, 79), T.on_token(2, 55)
    assert wild[high] > wild[low] and calm[high] < calm[low]
    assert wild[T.on_token(1, 40)] == 0 == wild[T.on_token(0, 36)]  # bass keeps the bottom, drums have no register


def test_velocity_tokens_invited_only_when_the_loudness_is_off():
    from cuecast.models.music.steer import level_bias, target_level

    right = round(target_level(0.9))
    at_target = level_bias(right, 0.9)
    assert float(at_target.max()) <= 0.5  # already loud enough: no reason to change
    too_soft = level_bias(1, 0.9)
    assert too_soft[right] > 2 and too_soft[0] < 0  # far too soft for an excited scene: louder levels invited


def test_a_calm_opening_is_not_a_lone_tune():
    """The tune waits for its accompaniment: the first notes of a piece are not all the melody's."""
    s = Steering(mode_strength=0, density_strength=0, velocity_strength=0, balance_strength=1.0, register_strength=0)
    b = s.bias(0.0, 0.0, -0.9)
    assert b[T.on_token(2, 72)] < b[T.on_token(3, 60)] and b[T.on_token(2, 72)] < b[T.on_token(4, 60)]
    for pitch in (48, 60, 64, 67):
        s.on_token(T.on_token(3, pitch), 0.0)
    b = s.bias(0.1, 0.0, -0.9)
    assert b[T.on_token(2, 72)] > b[T.on_token(3, 72)]  # with the chords sounding, the tune is welcome


def test_the_harmony_a_cut_leaves_includes_the_chord_held_into_it():
    st = Steering()
    for key in (60, 64, 67):  # a C major chord struck two beats before the cut and held to it
        st.on_token(T.on_token(3, key), 0.0)
    st.on_token(T.on_token(2, 74), 0.8)  # a D in the tune in the beat before the cut
    for key in (60, 64, 67):
        st.on_token(on_to_off(T.on_token(3, key)), 1.0)  # the cut (at 1.0) ends the held notes
    assert st.recent_pitch_classes(1.0, 0.5) == [0, 2, 4, 7]
    assert st.recent_keys(1.0, 0.5) == [60, 64, 67, 74]
    assert st.recent_pitch_classes(3.0, 0.5) == []  # long gone


def test_a_cut_starts_the_key_estimate_of_a_new_section():
    from cuecast.models.music.steer import Steering

    minor, major = (60, 63, 67, 68, 70, 72), (60, 64, 67, 69, 71, 72)  # C minor, then C major

    def key_after(cut: bool) -> float:
        st = Steering(mode_strength=3.0)
        t = 0.0
        for i in range(60):
            t += 0.1
            st.on_token(T.on_token(3, minor[i % 6]), t)
        if cut:
            st.new_section()
        for i in range(8):
            t += 0.1
            st.on_token(T.on_token(3, major[i % 6]), t)
        return st.key_now

    assert key_after(cut=False) < 0 < key_after(cut=True)  # the dark shot's minor no longer holds the bright one


def test_key_steering_asks_the_notes_to_keep_to_the_key_in_force_in_the_models_own_proportions():
    import torch

    model = tiny_model()
    with torch.no_grad():  # a scale prior that knows one thing: the tonic is the scale's centre
        model.scale_prior.zero_()
        model.scale_prior[:, :, 0] = 1.0
    rows = model.eval().scale_rows().detach().numpy()
    s = Steering(mode_strength=0.0, density_strength=0.0, velocity_strength=0.0, balance_strength=0.0,
                 register_strength=0.0, key_strength=2.0, key_rows=rows)
    assert s.bias(0.0, 0.5, 0.0) is None  # no key chosen yet: nothing to keep to
    a_minor = T.key_token(1, 9) - T.KEY0  # the key in force, as the model's cache keeps it
    b = s.bias(0.1, 0.5, 0.0, a_minor)
    assert b[T.on_token(3, 57)] == pytest.approx(2.0) and b[T.on_token(1, 45)] == pytest.approx(2.0)  # A's
    assert b[T.on_token(3, 60)] == 0 and b[T.on_token(0, 57)] == 0 and b[T.key_token(0, 0)] == 0  # not A, a drum, a key
    b = s.bias(0.3, 0.5, 0.0, T.key_token(0, 0) - T.KEY0)  # a new section in C major: its tonic now
    assert b[T.on_token(3, 60)] == pytest.approx(2.0) and b[T.on_token(3, 57)] == 0
    off = Steering(mode_strength=0.0, density_strength=0.0, velocity_strength=0.0, balance_strength=0.0,
                   register_strength=0.0, key_strength=0.0, key_rows=rows)
    assert off.bias(0.1, 0.5, 0.0, a_minor) is None
    assert s.copy().key_rows is rows


def test_a_section_opens_in_the_mode_valence_asks_and_a_cut_into_the_other_mode_invites_a_new_key():
    from cuecast.models.music.steer import CutScene, boundary_bias
    from cuecast.models.music.transformer import TransformerGenerator

    s = Steering(mode_strength=2.0, density_strength=0.0, velocity_strength=0.0, balance_strength=0.0, register_strength=0.0)
    dark, bright = s.bias(0.0, -0.8, math.nan), s.bias(0.0, 0.8, math.nan)
    assert dark[T.key_token(1, 2)] > 0 > dark[T.key_token(0, 2)]  # D minor over D major when dark
    assert bright[T.key_token(0, 7)] > 0 > bright[T.key_token(1, 7)]
    tick, beat = 0.5 / 12, 0.5
    keep = boundary_bias(0.0, tick, beat, 2.0, CutScene(level=7))
    turn = boundary_bias(0.0, tick, beat, 2.0, CutScene(level=7, key_open=True))
    assert keep[T.key_token(1, 0)] == 0 < turn[T.key_token(1, 0)]  # a key token invited only when the mode must turn
    other = TransformerGenerator._other_mode
    assert other(T.key_token(0, 0) - T.KEY0, -0.7) and other(T.key_token(1, 4) - T.KEY0, 0.6)
    assert not other(T.key_token(1, 4) - T.KEY0, -0.6) and not other(T.key_token(0, 0) - T.KEY0, 0.6)
    assert other(T.key_token(1, 4) - T.KEY0, 0.1) and not other(T.N_KEYS, -0.9)  # a bright shot read through smoothing; no key yet
    assert not other(T.key_token(0, 0) - T.KEY0, math.nan)
