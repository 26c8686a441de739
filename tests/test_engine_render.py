"""`cuecast render` end to end on a synthetic clip: outputs, alignment, determinism, bad input."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest

from cuecast.engine.cli import main
from cuecast.models.music.metrics import cut_alignment
from cuecast.streams.midi_file import midi_length, read_midi_notes, stuck_notes
from cuecast.testmedia.video import make_test_video

OUTPUTS = ["soundtrack.mid", "soundtrack.wav", "soundtrack.mp4", "timeline.json", "report.png"]


@pytest.fixture(scope="module")
def rendered(cut_clip, tmp_path_factory):
    path, cuts = cut_clip
    out = tmp_path_factory.mktemp("render")
    # in a process of its own, as a user runs it: once in a full suite run an in-process render drew other notes
    # than a fresh process does (3 of 4 cuts with a chord; not reproduced in 4 re-runs; cause not found)
    proc = run_cli("render", str(path), "-o", str(out), "--seed", "3", "-q")
    assert proc.returncode == 0, proc.stderr
    return out, cuts


def test_all_outputs_written(rendered):
    out, _ = rendered
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_midi_lasts_as_long_as_the_video_without_stuck_notes(rendered, cut_clip):
    out, _ = rendered
    with av.open(str(cut_clip[0])) as c:
        vs = c.streams.video[0]
        video_s = float(vs.duration * vs.time_base)
    assert midi_length(out / "soundtrack.mid") == pytest.approx(video_s, abs=0.05)
    assert stuck_notes(out / "soundtrack.mid") == 0


def test_chords_land_on_the_cuts(rendered):
    out, cuts = rendered
    notes = read_midi_notes(out / "soundtrack.mid")
    stats = cut_alignment(notes, cuts, cuts[-1] + 3.0)
    assert stats["hit_rate"] >= 0.9, stats
    assert stats["random_rate"] <= 0.35, stats


def test_timeline_has_cuts_emotion_tempo_chords(rendered):
    out, cuts = rendered
    tl = json.loads((out / "timeline.json").read_text())
    found = [c["t"] for c in tl["cuts"] if c["kind"] == "hard"]
    assert len(found) == len(cuts)
    assert max(abs(a - b) for a, b in zip(found, cuts)) <= 0.041  # within one frame at 25 fps
    assert len(tl["emotion"]) >= 15
    w = tl["emotion"][0]
    assert set(w["probs"]) == {"anger", "disgust", "fear", "joy", "sadness", "surprise"}
    assert sum(w["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert tl["tempo"] and tl["chords"]
    # the emotion follows the picture: the bright warm shot and the dark still one differ
    def va_at(t):
        return next((e["valence"], e["arousal"]) for e in tl["emotion"] if e["start"] <= t < e["end"])
    assert va_at(2.0) != va_at(4.0)


def test_mp4_has_video_and_audible_audio_as_long_as_the_video(rendered, cut_clip):
    out, _ = rendered
    with av.open(str(cut_clip[0])) as c:
        want = float(c.streams.video[0].duration * c.streams.video[0].time_base)
    with av.open(str(out / "soundtrack.mp4")) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        a = c.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(a)])
        assert float(np.sqrt(np.mean(samples ** 2))) > 1e-3
        assert len(samples) / a.rate / a.channels == pytest.approx(want, abs=0.15)


def test_same_seed_same_midi_bytes_other_seed_differs(rendered, cut_clip, tmp_path):
    out, _ = rendered
    assert run_cli("render", str(cut_clip[0]), "-o", str(tmp_path / "a"), "--seed", "3", "-q").returncode == 0
    assert (tmp_path / "a" / "soundtrack.mid").read_bytes() == (out / "soundtrack.mid").read_bytes()
    assert run_cli("render", str(cut_clip[0]), "-o", str(tmp_path / "b"), "--seed", "4", "-q").returncode == 0
    assert (tmp_path / "b" / "soundtrack.mid").read_bytes() != (out / "soundtrack.mid").read_bytes()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cuecast.engine.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc, words):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert words in lines[0], lines[0]


def test_missing_file(tmp_path):
    p = run_cli("render", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out"))
    assert_one_line_error(p, "no such file")
    assert not (tmp_path / "out" / "soundtrack.mid").exists()


def test_not_a_video(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is not a video\n" * 50)
    p = run_cli("render", str(f), "-o", str(tmp_path / "out"))
    assert_one_line_error(p, "not a video file")
    assert not list((tmp_path / "out").glob("*"))


def test_video_without_frames(tmp_path):
    f = tmp_path / "empty.mp4"
    c = av.open(str(f), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()  # header written, not one frame
    c.close()
    p = run_cli("render", str(f), "-o", str(tmp_path / "out"))
    assert_one_line_error(p, "no video")
    assert not list((tmp_path / "out").glob("*"))


def test_unwritable_outdir(cut_clip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = run_cli("render", str(cut_clip[0]), "-o", str(blocker / "out"))
    assert_one_line_error(p, "cannot")


def test_bad_config_value(cut_clip, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[conductor]\nlookahead_s = -2\n")
    p = run_cli("render", str(cut_clip[0]), "-o", str(tmp_path / "out"), "--config", str(cfg))
    assert_one_line_error(p, "conductor.lookahead_s")
    assert not (tmp_path / "out").exists()


def test_failed_run_leaves_no_complete_looking_outputs(tmp_path):
    # a clip that decodes but whose later packets are garbage still renders what it can, or fails cleanly
    f = tmp_path / "cut_short.mp4"
    make_test_video(f, [(1.0, (200, 100, 50)), (1.0, (20, 40, 200))], fps=25, size=(160, 96))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 3])  # truncated: moov atom may be lost
    p = run_cli("render", str(f), "-o", str(tmp_path / "out"), "-q")
    if p.returncode != 0:
        assert_one_line_error(p, "")
        assert not [x for x in (tmp_path / "out").glob("soundtrack.*")]
    else:
        assert (tmp_path / "out" / "soundtrack.mid").exists()


@pytest.mark.parametrize("generator,seeds,min_hit", [("arranger", (1,), 1.0), ("transformer", (1, 2, 3), 0.8)])
def test_compose_writes_midi_with_chords_on_cuts(tmp_path, generator, seeds, min_hit):
    """The arranger puts a chord on every cut by rule; the transformer's chords are sampled (the shipped
    weights' own placement), so it is held to most cuts over a few seeds."""
    cuts = [2.5, 6.1, 9.3]
    hits = []
    for seed in seeds:
        out = tmp_path / f"c{seed}.mid"
        assert main(["compose", "--valence", "0.5", "--arousal", "0.2", "--seconds", "12", "--cuts", "2.5,6.1,9.3",
                     "-o", str(out), "--seed", str(seed), "--generator", generator]) == 0
        hits.append(cut_alignment(read_midi_notes(out), cuts, 12.0)["hit_rate"])
        assert midi_length(out) == pytest.approx(12.0, abs=0.01)
        assert stuck_notes(out) == 0
    assert sum(hits) / len(hits) >= min_hit


def test_compose_bad_arguments(tmp_path):
    p = run_cli("compose", "--valence", "x", "--arousal", "0", "--seconds", "4", "-o", str(tmp_path / "c.mid"))
    assert_one_line_error(p, "--valence")
    p = run_cli("compose", "--valence", "0", "--arousal", "0", "--seconds", "4", "--cuts", "9", "-o", str(tmp_path / "c.mid"))
    assert_one_line_error(p, "outside")
