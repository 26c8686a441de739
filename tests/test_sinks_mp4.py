"""MP4 mux: one video and one audible audio stream, as long as the input video; copy or re-encode; rotation."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from cuecast.streams.audio_render import render_audio, write_wav
from cuecast.streams import mp4
from cuecast.streams.mp4 import MuxError, mux_soundtrack, video_span
from cuecast.testmedia.video import make_test_video
from cuecast.types import Note

RATE = 22050


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("mp4") / "in.mp4"
    make_test_video(path, [(1.0, (200, 60, 60)), (1.4, (60, 200, 60))], audio_hz=440.0)
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "music.wav"
    notes = [Note(0.25 * k, 0.25 * k + 0.4, 60 + (k * 5) % 12, 110, "chords") for k in range(10)]
    render_audio(notes, {"chords": (3, 0)}, 2.4, path, sample_rate=RATE)
    return path


def streams_of(path):
    with av.open(str(path)) as c:
        kinds = [s.type for s in c.streams]
        codecs = [s.codec_context.name for s in c.streams]
        audio = [f.to_ndarray().reshape(len(f.layout.channels), -1) for f in c.decode(audio=0)]
    samples = np.concatenate(audio, axis=1) if audio else np.zeros((2, 0))
    return kinds, codecs, samples


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_copy_video_and_add_audible_audio(tmp_path, clip, wav):
    out = tmp_path / "out.mp4"
    mux_soundtrack(clip, wav, out)
    kinds, codecs, samples = streams_of(out)
    assert kinds == ["video", "audio"] and codecs == ["h264", "aac"]
    src, dst = video_span(clip), video_span(out)
    assert abs(dst.duration - src.duration) < 0.1 and abs(samples.shape[1] / RATE - src.duration) < 0.1
    assert rms(samples) > 0.01
    # copied, not re-encoded: the same compressed packets
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(video=0) if p.size]
        pb = [bytes(p) for p in b.demux(video=0) if p.size]
    assert pa == pb


def test_wav_shorter_or_longer_than_video_is_fitted(tmp_path, clip):
    for seconds in (0.7, 5.0):
        w = tmp_path / f"{seconds}.wav"
        write_wav(w, np.full((int(seconds * RATE), 2), 0.2, np.float32), RATE)
        out = tmp_path / f"{seconds}.mp4"
        mux_soundtrack(clip, w, out)
        _, _, samples = streams_of(out)
        assert abs(samples.shape[1] / RATE - video_span(clip).duration) < 0.1


def test_reencodes_codecs_mp4_does_not_take(tmp_path, wav):
    src = tmp_path / "in.mkv"
    make_test_video(src, [(1.0, (30, 30, 200)), (1.0, (200, 200, 30))], codec="mpeg2video")
    out = tmp_path / "out.mp4"
    mux_soundtrack(src, wav, out)
    kinds, codecs, samples = streams_of(out)
    assert kinds == ["video", "audio"] and codecs == ["h264", "aac"]
    assert abs(video_span(out).duration - video_span(src).duration) < 0.1
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 50
    assert rms(samples) > 0.01


def test_mixes_the_original_audio_when_asked(tmp_path, clip, monkeypatch):
    monkeypatch.setattr(mp4, "AUDIO_BLOCK", 3 * 1024)  # many blocks: the input's sound is re-cut to each
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros((int(2.4 * RATE), 2), np.float32), RATE)
    mux_soundtrack(clip, silent, tmp_path / "replace.mp4", original_audio_mix=0.0)
    mux_soundtrack(clip, silent, tmp_path / "mix.mp4", original_audio_mix=1.0)
    assert rms(streams_of(tmp_path / "replace.mp4")[2]) < 1e-3
    mixed = streams_of(tmp_path / "mix.mp4")[2]
    assert rms(mixed) > 0.1  # the clip's 0.3-amplitude 440 Hz tone
    spectrum = np.abs(np.fft.rfft(mixed[0, RATE // 2:RATE // 2 + RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 2  # one second of samples: bin index is Hz
    # continuous across block seams: a clean tone has almost all its energy at 440 Hz
    energy = np.square(spectrum)
    assert energy[430:451].sum() > 0.995 * energy.sum()


def test_rotation_is_kept(tmp_path, wav):
    src = tmp_path / "rot.mp4"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=Fraction(25))
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.set_display_rotation(90)
        for k in range(25):
            img = np.full((48, 64, 3), k * 8, np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    assert video_span(src).rotation != 0
    out = tmp_path / "rot_out.mp4"
    mux_soundtrack(src, wav, out)
    assert video_span(out).rotation == video_span(src).rotation


def test_errors_are_clear_and_leave_nothing(tmp_path, clip, wav):
    bad = tmp_path / "not_video.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MuxError, match="cannot read"):
        mux_soundtrack(bad, wav, tmp_path / "x.mp4")
    with pytest.raises(MuxError, match="cannot write"):
        mux_soundtrack(clip, wav, tmp_path / "missing_dir" / "x.mp4")
    with pytest.raises(MuxError, match="cannot read"):
        mux_soundtrack(clip, tmp_path / "no.wav", tmp_path / "y.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_video.mp4"]
