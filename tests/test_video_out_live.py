"""`cuecast live --video-out` end to end: the real command on a clip with cuts, checked from what it wrote.

Cuts are found in the decoded output picture and onsets in its decoded audio; each cut's chord must sit
within one frame of it. A SIGTERM mid-stream must still leave a file that decodes to the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from media_check import decode, nearest, onsets, picture_cuts

from cuecast.testmedia.video import make_test_video

FPS = 25
SHOTS = [2.6, 3.1, 2.2, 3.4, 2.8, 3.0, 2.4, 3.3, 2.9]  # 25.7 s, cuts at uneven times
COLOURS = [(210, 70, 60), (50, 160, 80), (60, 70, 200), (220, 200, 70), (40, 40, 50), (200, 120, 200),
           (90, 200, 210), (150, 90, 40), (230, 230, 230)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, fluidsynth):
    path = tmp_path_factory.mktemp("vo_live") / "clip.mp4"
    cuts = make_test_video(path, list(zip(SHOTS, COLOURS)), fps=FPS, size=(320, 180), audio_hz=330.0)
    return path, cuts


LIGHT = """# what is measured here is the video out: keep the analysis light on a shared machine
[emotion]
faces = false
"""


def live(clip, out, *extra) -> subprocess.Popen:
    config = Path(out).parent / "light.toml"
    config.write_text(LIGHT)
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", "--source", f"file:{clip}", "--video-out", str(out),
           "--generator", "arranger", "--config", str(config), "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def written(err: str) -> int:
    """Pictures written, from the summary line."""
    m = re.search(r"video out: (\d+) pictures written, \d+ dropped", err)
    assert m, err[-600:]
    return int(m.group(1))


def engine_kept_up(err: str) -> None:
    """Chords land on cuts only when the analysis stays within the lookahead of real time. When the
    machine is so loaded that it did not (the engine re-planned for cuts that came after the playhead),
    the sync of picture and music is not what this run can show."""
    m = re.search(r"(\d+) re-plans", err)
    assert m, err[-600:]
    if int(m.group(1)):
        pytest.skip(f"the machine fell more than the lookahead behind real time ({m.group(0)}): "
                    "cuts reached the music late in every output, not only in the video")


def check_sync(path, clip_cuts, upto: float, chance_check: bool = True) -> list[float]:
    """Every cut in the written picture has its chord onset within one frame; returns the cuts seen.
    chance_check: also show that onsets this close are no accident (needs several cuts)."""
    times, pics, audio, rate, kinds, a0 = decode(str(path))
    assert kinds == ["video", "audio"]
    assert rms(audio) > 0.01  # audible
    # the music runs under the whole picture (it may run on where a starved machine decoded no more pictures)
    # (to within one AAC frame, the encoder's grain: a stop mid-way ends the audio on a whole frame)
    assert a0 + len(audio) / rate >= times[-1] - 1024 / rate
    seen = picture_cuts(times, pics)
    expected = [c for c in clip_cuts if c < times[-1]]
    assert seen == pytest.approx(expected, abs=0.5 / FPS), (seen, clip_cuts)
    assert times[-1] > upto
    found = onsets(audio, rate, a0, min_strength=0.3)  # twice the energy: a chord under a held note still counts
    for c in seen:
        assert nearest(found, c) <= 1 / FPS, f"no onset within a frame of the cut at {c:.3f} s"
    if not chance_check:
        return seen
    # and that is no accident of busy music: how often is there an onset within a frame of other moments?
    rng = np.random.default_rng(0)
    others = [x for x in rng.uniform(0.5, times[-1] - 0.5, 400) if min(abs(x - c) for c in seen) > 0.5]
    chance = float(np.mean([nearest(found, x) <= 1 / FPS for x in others]))
    assert chance ** len(seen) < 0.01, (chance, len(seen))
    return seen


def test_file_with_cuts_plays_in_sync(clip, tmp_path):
    path, cuts = clip
    out = tmp_path / "out.mp4"
    proc = live(path, out, "--duration", "20")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-1500:]
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == written(err)
    engine_kept_up(err)
    # 20 s played, the picture 3 s (the lookahead) behind: about 17 s in the file, with the cuts up to there
    seen = check_sync(out, cuts, upto=12.0)
    assert len(seen) >= 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["light.toml", "out.mp4"]  # no part file left behind


def test_sigterm_leaves_a_file_that_plays(clip, tmp_path):
    path, cuts = clip
    out = tmp_path / "out.mkv"
    proc = live(path, out)
    deadline = time.monotonic() + 90

    def written_bytes() -> int:
        return sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.endswith(".part.mkv"))

    while time.monotonic() < deadline and written_bytes() < 20_000:
        assert proc.poll() is None, proc.stderr.read()[-800:]
        time.sleep(0.1)  # the models are loading; pictures go out once their music plays
    time.sleep(6.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-1500:]
    with av.open(str(out)) as c:  # decodes to the end without an error
        frames = sum(1 for _ in c.decode(video=0))
    assert frames > 3 * FPS and frames == written(err)
    engine_kept_up(err)
    check_sync(out, cuts, upto=3.0, chance_check=False)
