"""The audio cut measure (tools/eval_audio_cuts.py) on synthetic WAVs: a soundtrack that changes chord with
an attack at each cut scores high; one that ignores the cuts scores about chance."""

import sys
import wave
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import eval_audio_cuts as E  # noqa: E402

SR = 22050
CHORDS = ((60, 64, 67), (57, 60, 64), (65, 69, 72), (67, 71, 74))


def tone(pitches, seconds, attack=True):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in pitches) / len(pitches)
    env = np.exp(-t * 3.0) * 0.8 + 0.2 if attack else np.ones_like(t) * 0.5
    return x * env


def write(path, x):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32000).astype(np.int16).tobytes())


def test_cuts_with_a_new_chord_and_an_attack_stand_out(tmp_path):
    cuts = [3.0, 6.5, 9.0, 12.5, 16.0]
    bounds = [0.0, *cuts, 20.0]
    x = np.concatenate([tone(CHORDS[i % 4], b - a) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))])
    write(tmp_path / "good.wav", x)
    r = E.pooled([E.score_wav(tmp_path / "good.wav", cuts)])
    assert r["cuts"] == 5 and r["random"] > 20
    assert r["onset_auc"] >= 0.95 and r["harmony_auc"] >= 0.95


def test_music_that_ignores_the_cuts_scores_near_chance(tmp_path):
    beat = 0.5  # a chord change with an attack every beat, whatever the picture does
    x = np.concatenate([tone(CHORDS[i % 4], beat) for i in range(40)])
    write(tmp_path / "steady.wav", x)
    cuts = [3.27, 6.81, 9.13, 12.66, 16.42]  # between beats
    r = E.pooled([E.score_wav(tmp_path / "steady.wav", cuts)])
    assert r["onset_auc"] < 0.75 and r["harmony_auc"] < 0.75


def test_auc_counts_ties_half():
    assert E.auc(np.array([1.0, 2.0]), np.array([0.0, 0.5])) == 1.0
    assert E.auc(np.array([1.0]), np.array([1.0])) == 0.5
    assert np.isnan(E.auc(np.array([]), np.array([1.0])))


def test_random_moments_keep_away_from_cuts():
    rng = np.random.default_rng(0)
    m = E.random_moments(20.0, [5.0, 10.0], 40, rng)
    assert len(m) == 40 and min(min(abs(t - c) for c in (5.0, 10.0)) for t in m) >= E.MIN_DISTANCE_S - 1e-9


def test_bad_wav_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x.wav").write_text("not a wav")
    assert E.main(["--wav", str(tmp_path / "x.wav"), "--cuts", "1.0"]) == 2
    assert capsys.readouterr().err.startswith("cuecast: error:")


def test_chroma_resolves_semitones_in_the_pad_register():
    """A G3 (196 Hz) is G, not smeared over its neighbours: a chord change low in the texture is seen (with
    46 ms frames a third of its energy lands on other pitch classes)."""
    mag, freqs = E.spectrogram(tone((55,), 1.0, attack=False), SR, E.CHROMA_FRAME_S)
    c = E.chroma(mag, freqs).mean(axis=0)
    assert int(np.argmax(c)) == 7 and c[7] > 0.9 * c.sum()
