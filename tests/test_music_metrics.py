"""Metrics and theory on hand-made notes, each with a case it must reject."""

from __future__ import annotations

import math

import mido

from cuecast.streams.midi_file import read_midi_notes, stuck_notes
import pytest

from cuecast.models.music import metrics as M
from cuecast.models.music import theory as T
from cuecast.types import Note


def chord(t, pitches, hold=1.0, inst="chords", stagger=0.0):
    return [Note(t + i * stagger, t + i * stagger + hold, p, 80, inst) for i, p in enumerate(pitches)]


# ---- chord onsets and cut alignment ---------------------------------------------------------------
def test_chord_onsets_definition():
    notes = chord(1.0, [60, 64, 67])  # a block chord
    notes += chord(3.0, [60, 64, 67], stagger=0.014)  # a strum inside 30 ms still counts
    notes += chord(5.0, [60, 64, 67], stagger=0.05)  # arpeggio: not a chord onset
    notes += chord(7.0, [60, 64, 67], hold=0.3)  # stab: too short
    notes += chord(9.0, [60, 72, 84])  # three notes, one pitch class
    notes += chord(11.0, [36, 38, 42, 46], inst="drums")  # drums do not count
    notes += chord(13.0, [60, 64]) + [Note(13.0, 14.0, 67, 80, "bass")]  # across instruments it counts
    assert M.chord_onsets(notes) == [1.0, 3.0, 13.0]


def test_cut_alignment_hits_and_random_rate():
    cuts = [2.0, 6.0, 10.0]
    on_cuts = sum((chord(c + 0.05, [60, 64, 67]) for c in cuts), [])
    al = M.cut_alignment(on_cuts, cuts, 12.0)
    assert al["hit_rate"] == 1.0 and al["random_rate"] == 0.0
    assert al["offsets"] == [0.05, 0.05, 0.05]
    late = sum((chord(c + 0.15, [60, 64, 67]) for c in cuts), [])  # outside +-100 ms
    assert M.cut_alignment(late, cuts, 12.0)["hit_rate"] == 0.0
    # chords every 0.25 s hit every cut but also nearly every random moment: not alignment
    everywhere = sum((chord(k * 0.25, [60, 64, 67]) for k in range(48)), [])
    al = M.cut_alignment(everywhere, cuts, 12.0)
    assert al["hit_rate"] == 1.0 and al["random_rate"] > 0.7


def test_random_moments_keep_away_from_cuts():
    cuts = [1.0, 2.0, 3.0]
    ts = M.random_moments(cuts, 5.0, 100, min_gap=0.5, seed=1)
    assert len(ts) == 100
    assert all(min(abs(t - c) for c in cuts) >= 0.5 for t in ts)
    assert ts == M.random_moments(cuts, 5.0, 100, min_gap=0.5, seed=1)


# ---- key and pitch content ---------------------------------------------------------------------------
def scale_run(tonic, mode, t0=0.0):
    """Tonic triad held long, then the scale: the way a piece establishes its key."""
    pcs = T.scale_pcs(tonic, mode)
    notes = chord(t0, [48 + tonic, 48 + pcs[2] + (12 if pcs[2] < tonic else 0), 55 + tonic], hold=4.0)
    notes += [Note(t0 + 4 + 0.5 * i, t0 + 4.5 + 0.5 * i, 60 + (pc - tonic) % 12 + tonic, 80, "melody") for i, pc in enumerate(pcs)]
    return notes


def test_key_score_major_positive_minor_negative():
    # KK's major profile fits the mediant's minor key fairly well too, so major margins are smaller
    assert M.key_score(scale_run(0, "major")) > 0.05
    assert M.key_score(scale_run(9, "minor")) < -0.2
    assert M.key_score(scale_run(7, "major")) > M.key_score(scale_run(7, "harmonic_minor"))
    assert M.key_score([]) == 0.0
    assert M.best_key(scale_run(2, "major"))[:2] == (2, "major")


def test_pitch_in_scale_rate():
    assert M.pitch_in_scale_rate(scale_run(0, "major")) == 1.0
    chromatic = [Note(i * 0.5, i * 0.5 + 0.4, 60 + i, 80, "melody") for i in range(12)]
    assert M.pitch_in_scale_rate(chromatic) < 0.7
    assert math.isnan(M.pitch_in_scale_rate([]))


def test_pitch_class_entropy():
    one = [Note(i, i + 1, 60, 80, "melody") for i in range(8)]
    chromatic = [Note(i, i + 1, 60 + i, 80, "melody") for i in range(12)]
    assert M.pitch_class_entropy(one) == 0.0
    assert M.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))


# ---- time and texture -----------------------------------------------------------------------------
def test_notes_per_second_and_duration():
    notes = [Note(i * 0.25, i * 0.25 + 0.2, 60, 80, "melody") for i in range(40)]  # 10 s of sixteenths at 60
    assert M.duration(notes) == pytest.approx(9.95)
    assert M.notes_per_second(notes, 10.0) == pytest.approx(4.0)
    drums = [Note(i * 0.5, i * 0.5 + 0.1, 42, 80, "drums") for i in range(20)]
    assert M.notes_per_second(notes + drums, 10.0, include_drums=False) == pytest.approx(4.0)
    assert M.notes_per_second([], 10.0) == 0.0


def test_empty_beat_rate():
    notes = [Note(b, b + 0.5, 60, 80, "melody") for b in (0.0, 1.0, 3.0)]  # beats 0, 1, 3 of 4 at 60 bpm
    assert M.empty_beat_rate(notes, tempo_bpm=60, duration=4.0) == pytest.approx(0.25)
    held = [Note(0.0, 4.0, 60, 80, "pad")]
    assert M.empty_beat_rate(held, tempo_bpm=60, duration=4.0) == pytest.approx(0.75)  # onsets only
    assert M.empty_beat_rate(held, tempo_bpm=60, duration=4.0, sounding=True) == 0.0
    assert M.empty_beat_rate(notes, beats=[0.0, 2.0]) == 0.0  # half-note beats
    with pytest.raises(ValueError):
        M.empty_beat_rate(notes)


def test_polyphony():
    assert M.polyphony(chord(0, [60, 64, 67], hold=2.0)) == pytest.approx(3.0)
    # one voice for 2 s, then three voices for 2 s: the mean over sounding time is 2
    notes = [Note(0, 4, 48, 80, "bass")] + chord(2.0, [60, 64], hold=2.0)
    assert M.polyphony(notes) == pytest.approx(2.0)
    assert M.polyphony(chord(0, [36, 42], inst="drums")) == 0.0


def _midi(path, events):
    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    for msg in events:
        tr.append(msg)
    mf.save(path)


def test_stuck_notes(tmp_path):
    good = tmp_path / "good.mid"
    _midi(good, [mido.Message("note_on", note=60, velocity=90, channel=0, time=0),
                 mido.Message("note_on", note=60, velocity=0, channel=0, time=480),  # vel 0 ends it
                 mido.Message("note_on", note=64, velocity=90, channel=2, time=0),
                 mido.Message("note_off", note=64, channel=2, time=480)])
    assert stuck_notes(good) == 0
    bad = tmp_path / "bad.mid"
    _midi(bad, [mido.Message("note_on", note=60, velocity=90, channel=0, time=0),
                mido.Message("note_on", note=60, velocity=90, channel=0, time=100),  # re-strike, one off
                mido.Message("note_off", note=60, channel=0, time=100),
                mido.Message("note_on", note=38, velocity=90, channel=9, time=0),
                mido.Message("note_off", note=38, channel=1, time=100)])  # off on the wrong channel
    assert stuck_notes(bad) == 2  # the re-struck C4 on 1 and the snare on 10


def test_metrics_read_midi_files(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0, name="chords")
    inst.notes = [pretty_midi.Note(velocity=80, pitch=p, start=1.0, end=2.0) for p in (60, 64, 67)]
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    drums.notes = [pretty_midi.Note(velocity=80, pitch=p, start=3.0, end=4.0) for p in (36, 38, 42)]
    pm.instruments += [inst, drums]
    path = tmp_path / "x.mid"
    pm.write(str(path))
    notes = read_midi_notes(path)
    assert M.chord_onsets(notes) == [pytest.approx(1.0)]
    assert {n.instrument for n in notes} == {"chords", "drums"}
    assert M.cut_alignment(notes, [1.05], 4.0)["hit_rate"] == 1.0


def test_invalid_notes():
    ok = Note(0, 1, 60, 80, "melody")
    bad = [Note(0, 0, 60, 80, "melody"), Note(0, 1, 128, 80, "bass"), Note(0, 1, 60, 0, "pad"), Note(0, 1, 60, 80, "kazoo")]
    assert M.invalid_notes([ok] + bad) == bad


# ---- theory ----------------------------------------------------------------------------------------
def test_theory_chords_and_scales():
    assert T.roman_chord("bVI", 0) == (8, (8, 0, 3))
    assert T.roman_chord("V7", 9) == (4, (4, 8, 11, 2))
    assert T.roman_chord("ii°", 0)[1] == (2, 5, 8)
    assert T.scale_pcs(2, "dorian") == (2, 4, 5, 7, 9, 11, 0)
    assert T.diatonic_chord(0, "major", 4) == (7, 11, 2)
    assert T.pitch_class("Bb") == 10 and T.note_name(61) == "C#4"
    for bad in ("H", "VIII"):
        with pytest.raises(ValueError):
            T.pitch_class(bad) if bad == "H" else T.roman_chord(bad, 0)
    for mode, progs in T.PROGRESSIONS.items():
        assert mode in T.APPROACH
        for p in progs:
            for numeral in p:
                T.roman_chord(numeral, 0)


def test_voice_leading_moves_little():
    a = T.voice_lead(None, T.roman_chord("I", 0)[1], 4, 52, 76)
    b = T.voice_lead(a, T.roman_chord("IV", 0)[1], 4, 52, 76)
    assert {p % 12 for p in b} == {5, 9, 0}
    assert sum(abs(x - y) for x, y in zip(a, b)) <= 6  # common tone kept, others by step
    assert all(52 <= p <= 76 for p in b)
    seventh = T.voice_lead(b, T.roman_chord("V7", 0)[1], 4, 52, 76)
    assert {p % 12 for p in seventh} == {7, 11, 2, 5}


def test_tempo_for_arousal():
    assert T.tempo_for_arousal(-1, 60, 160) == 60 and T.tempo_for_arousal(1, 60, 160) == 160
    ts = [T.tempo_for_arousal(a, 60, 160) for a in (-1, -0.5, 0, 0.5, 1)]
    assert ts == sorted(ts) and len(set(ts)) == 5
    assert T.tempo_for_arousal(5, 60, 160) == 160
    with pytest.raises(ValueError):
        T.tempo_for_arousal(0, 100, 80)


def test_modes_follow_valence():
    def brightness(v):
        return sum(w * T.MODES_BY_BRIGHTNESS.index(m) for m, w in T.modes_for_valence(v))

    vals = [brightness(v) for v in (1.0, 0.3, 0.0, -0.3, -1.0)]
    assert vals == sorted(vals)
    assert T.progression_key_score(("I", "IV", "I", "V"), "major") > 0 > T.progression_key_score(("i", "iv", "V", "i"), "harmonic_minor")
