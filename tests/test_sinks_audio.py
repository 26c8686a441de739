"""Audio render through FluidSynth: exact length, sound where notes are, silence where none, determinism."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cuecast.streams import audio_render
from cuecast.streams.audio_render import (AudioRenderError, SynthUnavailable, find_soundfont, load_fluidsynth,
                                          read_wav, render_audio)
from cuecast.types import Note

CHANNELS = {"drums": (10, 0), "bass": (2, 33), "chords": (3, 0), "melody": (4, 73), "pad": (5, 48)}
RATE = 22050  # half rate keeps the tests fast; the engine uses 44100


def groove(seconds: float) -> list[Note]:
    notes = []
    for b in range(int(seconds * 2)):
        t = b * 0.5
        notes += [Note(t, t + 0.1, 36 if b % 2 == 0 else 38, 100, "drums"), Note(t, t + 0.45, 40, 90, "bass")]
        if b % 4 == 0:
            notes += [Note(t, t + 2.0, p, 80, "chords") for p in (60, 64, 67)]
    return notes


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


@pytest.mark.parametrize("duration", [0.5, 3.0, 4.321])
def test_wav_length_is_exact_and_audible(tmp_path, duration):
    path = tmp_path / "a.wav"
    render_audio(groove(5.0), CHANNELS, duration, path, sample_rate=RATE)
    audio, rate = read_wav(path)
    assert rate == RATE and audio.shape == (round(duration * RATE), 2)
    assert rms(audio) > 0.01


def test_no_notes_is_silence_of_the_right_length(tmp_path):
    path = tmp_path / "s.wav"
    render_audio([], CHANNELS, 2.0, path, sample_rate=RATE)
    audio, _ = read_wav(path)
    assert audio.shape == (2 * RATE, 2) and not audio.any()


def test_sound_starts_at_the_note(tmp_path):
    """A single note at 1.0 s: silence before it, sound within 10 ms after it."""
    path = tmp_path / "n.wav"
    render_audio([Note(1.0, 1.8, 60, 110, "chords")], CHANNELS, 2.0, path, sample_rate=RATE)
    audio, _ = read_wav(path)
    loud = np.flatnonzero(np.abs(audio).max(axis=1) > 0.003)
    assert loud.size and 1.0 <= loud[0] / RATE <= 1.01
    assert rms(audio[int(1.1 * RATE):int(1.5 * RATE)]) > 0.01


def test_drums_on_channel_10_sound(tmp_path):
    path = tmp_path / "d.wav"
    render_audio([Note(0.1 * k, 0.1 * k + 0.05, 38, 120, "drums") for k in range(10)], CHANNELS, 1.2, path,
                 sample_rate=RATE)
    audio, _ = read_wav(path)
    assert rms(audio) > 0.01


def test_same_notes_same_wav(tmp_path):
    notes = groove(3.0)
    render_audio(notes, CHANNELS, 3.0, tmp_path / "1.wav", sample_rate=RATE)
    render_audio(list(reversed(notes)), CHANNELS, 3.0, tmp_path / "2.wav", sample_rate=RATE)
    assert (tmp_path / "1.wav").read_bytes() == (tmp_path / "2.wav").read_bytes()


def test_soundfont_choice(tmp_path):
    assert find_soundfont("/some/explicit.sf2").as_posix() == "/some/explicit.sf2"
    found = find_soundfont()
    assert found is not None and found.suffix == ".sf2" and found.is_file()
    with pytest.raises(AudioRenderError, match="soundfont"):
        render_audio(groove(1.0), CHANNELS, 1.0, tmp_path / "x.wav", soundfont=str(tmp_path / "none.sf2"))
    assert not (tmp_path / "x.wav").exists()


def test_pretty_midi_soundfont_renders(tmp_path):
    import pretty_midi
    from pathlib import Path
    sf = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    render_audio(groove(1.0), CHANNELS, 1.0, tmp_path / "t.wav", sample_rate=RATE, soundfont=str(sf))
    assert rms(read_wav(tmp_path / "t.wav")[0]) > 0.01


def test_synth_unavailable_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # what a missing libfluidsynth looks like: ImportError
    with pytest.raises(SynthUnavailable) as e:
        load_fluidsynth()
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install fluidsynth fluid-soundfont-gm" in msg and "brew" in msg
    assert "Windows" in msg
    with pytest.raises(SynthUnavailable):  # render_audio says the same, and leaves no partial WAV behind
        render_audio(groove(1.0), CHANNELS, 1.0, tmp_path / "a.wav", sample_rate=RATE)
    assert list(tmp_path.iterdir()) == []
    # render with no notes needs no synth, so it still writes the (silent) file
    assert audio_render.synthesize([], CHANNELS, 0.1, RATE).shape == (round(0.1 * RATE), 2)


def test_unwritable_wav_path(tmp_path):
    with pytest.raises(AudioRenderError, match="cannot write"):
        render_audio([], CHANNELS, 0.1, tmp_path / "missing" / "x.wav")


def test_block_size_does_not_change_the_sound(monkeypatch):
    """Rendering in blocks (for memory) gives the same samples as one block, fade-out included."""
    notes = groove(2.0) + [Note(1.5, 3.0, 72, 100, "melody")]  # still sounding at the end
    whole = audio_render.synthesize(notes, CHANNELS, 2.0, RATE)
    monkeypatch.setattr(audio_render, "BLOCK", 1000)  # not a multiple of FluidSynth's 64-sample block
    pieces = audio_render.synthesize(notes, CHANNELS, 2.0, RATE)
    assert np.array_equal(whole, pieces)
    assert np.abs(whole[-1]).max() == 0.0 and np.abs(whole[-RATE // 10:]).max() > 0.01  # faded, not silent
