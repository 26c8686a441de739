"""Bounds on what an input can ask for, and memory that stays flat however long a run goes."""

from __future__ import annotations

import os
import socket

import pytest

from cuecast.engine.conductor import EMOTION_MEMORY_S, RECENT_TEMPO_POINTS, Conductor
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


class _Nowhere:
    def tempo(self, *a): ...
    def notes(self, notes): ...
    def cut_at(self, t): ...
    def close(self): ...


def _gliding_conductor(history: bool) -> Conductor:
    """An hour of music whose arousal swings every 8 s: the tempo glides bar after bar, a point each time."""
    cfg = load_config(None, {"generator.backend": "arranger"})
    gen = Arranger(cfg.generator)
    gen.reset(0)
    c = Conductor(cfg.conductor, gen, _Nowhere(), lambda a: 100.0 + 30.0 * a, history=history)
    for k in range(450):
        c.add_emotion(EmotionWindow(start=8.0 * k, end=8.0 * k + 8.0, probs=(1 / 6,) * 6, valence=0.0,
                                    arousal=1.0 if k % 2 else -1.0))
        c.advance(8.0 * k + 8.0)
    return c


def test_live_conductor_keeps_only_recent_tempo_points():
    full, live = _gliding_conductor(True), _gliding_conductor(False)
    assert len(full.tempo_map) > 4 * RECENT_TEMPO_POINTS  # the hour changed tempo hundreds of times
    assert len(live.tempo_map) <= 2 * RECENT_TEMPO_POINTS
    assert live.tempo_map == full.tempo_map[-len(live.tempo_map):]  # the same music, only less remembered
    assert live.cursor == full.cursor and live.beat == full.beat


def test_heap_release_gives_freed_memory_back():
    """glibc keeps freed chunks in a thread's arena; a release returns them (engine/heap.py, live)."""
    import subprocess
    import sys

    code = """
import threading
from cuecast.engine.heap import release_free_memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
def churn(keep):  # chunks under the mmap threshold, each followed by a small survivor, on a thread of its own
    big = []
    for _ in range(1500):
        big.append(bytearray(100_000))
        keep.append(bytearray(200))
keep = []
t = threading.Thread(target=churn, args=(keep,))
t.start()
t.join()
before = rss()
print(release_free_memory(), before, rss())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-600:]
    ok, before, after = r.stdout.split()
    if ok != "True":
        pytest.skip("not glibc: no malloc_trim")
    assert int(before) - int(after) > 100  # of the ~150 MB freed, resident before the release


def test_heap_release_interval_is_bounded():
    assert load_config(None).runtime.heap_release_s > 0  # on by default: live runs last hours
    for bad in (0.5, float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match="heap_release_s"):
            load_config(None, {"runtime.heap_release_s": bad})
    assert load_config(None, {"runtime.heap_release_s": 0}).runtime.heap_release_s == 0


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


def make_gap_video(path, times: list[float], size=(64, 48)) -> None:
    """A few frames at exactly these presentation times (millisecond time base), as a broken stream has."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (i * 60) % 255, np.uint8), format="rgb24")
            f.pts, f.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _cli(*args, timeout: float = 120):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cuecast.engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_gap_file_renders_small_with_one_warning(tmp_path):
    import json
    import wave

    src = tmp_path / "gap.mkv"
    make_gap_video(src, [0.0, 0.04, 600.0])
    assert src.stat().st_size < 4000  # a tiny file that declares ten minutes
    r = _cli("render", str(src), "-o", str(tmp_path / "out"), "--generator", "arranger", "-q")
    assert r.returncode == 0, r.stderr[-600:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("cuecast: warning:")]
    assert len(warnings) == 1 and "discontinuity" in warnings[0] and "10 min" in warnings[0], r.stderr
    with wave.open(str(tmp_path / "out" / "soundtrack.wav")) as w:
        assert w.getnframes() / w.getframerate() < 2.0
    assert json.loads((tmp_path / "out" / "timeline.json").read_text())["duration"] < 1.0
    assert (tmp_path / "out" / "soundtrack.mp4").stat().st_size < 200_000


def test_fifo_input_is_one_line_not_a_hang(tmp_path):
    fifo = tmp_path / "feed.mp4"
    os.mkfifo(fifo)  # nobody ever writes: a reader that opened it would wait forever
    for args in (["render", str(fifo), "-o", str(tmp_path / "out")],
                 ["live", "--source", f"file:{fifo}", "--midi-out", "none", "-q"]):
        r = _cli(*args, timeout=240)  # a hang would be forever; the machine may be slow
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith("cuecast: error:") and "named pipe" in lines[0] and f"pipe:{fifo}" in lines[0]


def test_truncated_file_is_warned_with_what_was_read(tmp_path):
    """An MP4 with its index in front, cut off: the header promises more frames than there are."""
    from cuecast.testmedia.video import make_test_video

    full = tmp_path / "full.mp4"
    make_test_video(full, [(2.0, (200, 60, 60)), (2.0, (60, 60, 200)), (2.0, (60, 200, 60))], size=(96, 64))
    import av

    fixed = tmp_path / "faststart.mp4"
    with av.open(str(full)) as inp, av.open(str(fixed), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        for p in inp.demux(inp.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                out.mux(p)
    cut = tmp_path / "cut.mp4"
    data = fixed.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # moov in front: the index still lists every frame
    r = _cli("render", str(cut), "-o", str(tmp_path / "out"), "--generator", "arranger", "-q")
    assert r.returncode == 0, r.stderr[-600:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("cuecast: warning:")]
    assert len(warnings) == 1 and "truncated" in warnings[0] and "of the 6.00 s" in warnings[0], r.stderr
