"""Bounds on what an input can ask for, and memory that stays flat however long a run goes."""

from __future__ import annotations

import os
import socket

import pytest

from cuecast.engine.conductor import EMOTION_MEMORY_S, Conductor
from cuecast.engine.config import load_config
from cuecast.engine.errors import ConfigError
from cuecast.models.music.arranger import Arranger
from cuecast.streams.limits import InputKindError, MediaClock, check_input_file, truncation_warning
from cuecast.types import EmotionWindow


def test_gap_is_closed_up_to_one_frame_and_said_once():
    said = []
    clock = MediaClock(max_gap=10.0, max_duration=3600.0, frame_s=0.04, name="gap.mkv", warn=said.append)
    ts = [clock.t(p) for p in (5.0, 5.04, 605.0, 605.04, 1205.0)]
    assert ts == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16])
    assert len(said) == 1 and "0.04 s" in said[0] and "10 min 00 s" in said[0] and "max_gap_s" in said[0]
    assert clock.shift_at(5.04) == 0.0 and clock.shift_at(605.0) == pytest.approx(599.92)
    assert clock.shift_at(2000.0) == pytest.approx(2 * 599.92)


def test_ordinary_variable_frame_rate_is_untouched():
    clock = MediaClock(max_gap=10.0, max_duration=3600.0, frame_s=1 / 30)
    pts = [0.0, 0.033, 0.1, 2.5, 9.9, 10.0]  # a held frame of 7.4 s is still a picture, not a splice
    assert [clock.t(p) for p in pts] == pytest.approx(pts)


def test_a_pass_stops_at_the_longest_duration():
    said = []
    clock = MediaClock(max_gap=10.0, max_duration=60.0, frame_s=1.0, warn=said.append)
    out = [clock.t(float(p)) for p in range(0, 100)]
    assert out[60] == 60.0 and out[61] is None and out[99] is None
    assert len(said) == 1 and "max_duration_s" in said[0]


def test_truncation_warning_names_what_was_read():
    w = truncation_warning("clip.mp4", 10.0, 30.0)
    assert w is not None and "10.00 s of the 30.00 s" in w
    assert truncation_warning("clip.mp4", 29.5, 30.0) is None
    assert truncation_warning("clip.mp4", 5.0, 0.0) is None  # nothing declared: nothing to compare


def test_fifo_socket_and_folder_are_not_video_files(tmp_path):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    with pytest.raises(InputKindError, match=r"named pipe \(FIFO\).*pipe:"):
        check_input_file(str(fifo), "read it as a live stream with --source pipe:PATH")
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    try:
        with pytest.raises(InputKindError, match="socket"):
            check_input_file(str(sock))
    finally:
        s.close()
    with pytest.raises(InputKindError, match="directory"):
        check_input_file(str(tmp_path))
    check_input_file("/dev/null")  # a device is a device: its reader decides
    check_input_file(str(tmp_path / "missing.mp4"))  # the opener says "no such file"


@pytest.mark.parametrize("key,value", [("source.max_gap_s", 0.0), ("source.max_duration_s", float("inf")),
                                       ("source.max_duration_s", float("nan")), ("source.queue_frames", 10**9),
                                       ("generator.seed", 2**64)])
def test_limits_are_bounded_in_the_config(key, value):
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        load_config(None, {key: value})


def test_conductor_keeps_only_recent_emotion():
    cfg = load_config(None, {"generator.backend": "arranger"})

    class Nowhere:
        def tempo(self, *a): ...
        def notes(self, notes): ...
        def cut_at(self, t): ...
        def close(self): ...

    gen = Arranger(cfg.generator)
    gen.reset(0)
    c = Conductor(cfg.conductor, gen, Nowhere(), lambda a: 100.0)
    hop = 0.5
    for k in range(20_000):  # 2.8 hours of windows
        t = k * hop
        c.add_emotion(EmotionWindow(start=t, end=t + 2.0, probs=(1 / 6,) * 6, valence=(k % 7) / 10, arousal=0.0))
    assert len(c.emotion) <= (EMOTION_MEMORY_S / hop) + 70
    t = 19_990 * hop + 1.0  # the middle of window 19990
    assert c._emotion_at(t)[0] == pytest.approx((19_990 % 7) / 10)
    assert c._emotion_at(t + 0.49)[0] == pytest.approx((19_990 % 7) / 10)


def _tiny_video(path, w: int, h: int, frames: int = 40) -> None:
    """MJPEG (4:4:4 takes any size): odd and 1-pixel sizes that a 4:2:0 re-encode must round."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuvj444p"
        for i in range(frames):
            img = np.full((h, w, 3), 40 if i < frames // 2 else 220, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("w,h", [(1, 63)])  # 1 pixel wide, odd height
def test_tiny_and_odd_videos_render(tmp_path, w, h):
    import subprocess
    import sys

    import av

    from cuecast.streams.video_out import even_size

    src = tmp_path / f"tiny_{w}x{h}.avi"
    _tiny_video(src, w, h)
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "render", str(src), "-o", str(tmp_path / "out"),
                        "--generator", "arranger", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-600:]
    with av.open(str(tmp_path / "out" / "soundtrack.mp4")) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == even_size(w, h)
        assert sum(1 for _ in c.decode(vs)) == 40
