"""Network inputs end to end: a real clip served over HTTP and pushed live as MPEG-TS over UDP (and RTMP to a
listening cuecast) -> `cuecast live --record` -> the clip's cuts in timeline.json within one frame; a live
stream cut off mid-way and restored -> the music carries on, cuecast reconnects, nothing sounds stuck at a
real JACK port. All traffic stays on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture
from stream_push import HttpServer, StreamPusher, free_port

from cuecast.streams.network import NetworkSource, ffmpeg_open_args, is_listener
from cuecast.testmedia.video import make_test_video
from cuecast.types import SourceError

FPS = 25
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3.6 s, three shots, a tone; MPEG-2 video keyframes every 12 frames, so a receiver that joins a
    stream late (or again after a drop) finds a picture within half a second, as with a real encoder."""
    path = tmp_path_factory.mktemp("ingest") / "clip.ts"
    cuts = make_test_video(path, [(1.2, (230, 190, 120)), (1.2, (40, 50, 90)), (1.2, (220, 40, 40))], fps=FPS,
                           size=(320, 180), audio_hz=330.0, codec="mpeg2video")
    return path, cuts


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory):
    """The same shots in H.264 (what FLV, and so RTMP, carries)."""
    path = tmp_path_factory.mktemp("ingest") / "clip.mp4"
    cuts = make_test_video(path, [(1.2, (230, 190, 120)), (1.2, (40, 50, 90)), (1.2, (220, 40, 40))], fps=FPS,
                           size=(320, 180), audio_hz=330.0)
    return path, cuts


@pytest.fixture
def rx(jack):  # noqa: F811
    r = JackReceiver(client=f"ingest{time.monotonic_ns() % 10**9}")
    yield r
    r.close()


def live(source: str, rx, record, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", "--source", source, "--midi-out",
           f"jack:{rx.full_name}", "--lookahead", "1", "--record", str(record), "-q", "--generator", "arranger", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_line(proc: subprocess.Popen, needle: str, timeout: float = 60.0) -> str:
    """Read stderr until a line with `needle` (cuecast says when it listens)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            pytest.fail(f"cuecast ended before saying {needle!r}: {proc.stderr.read()[-800:]}")
    pytest.fail(f"cuecast did not say {needle!r} within {timeout} s")


def config(folder, **source) -> str:
    path = folder / "source.toml"
    path.write_text("[source]\n" + "".join(f"{k} = {v}\n" for k, v in source.items()))
    return path


def cuts_of(record) -> list[float]:
    tl = json.loads((record / "timeline.json").read_text())
    return [c["t"] for c in tl["cuts"] if c["kind"] == "hard"]


def test_urls_and_options():
    assert is_listener("udp://@:5000") and is_listener("srt://127.0.0.1:9000?mode=listener")
    assert is_listener("rtmp://127.0.0.1:1935/live/key?listen=1")
    assert not is_listener("rtmp://example.org/live/key") and not is_listener("http://host/a.m3u8")
    url, opts = ffmpeg_open_args("rtmp://127.0.0.1:1935/live/key?listen=1")
    assert url == "rtmp://127.0.0.1:1935/live/key" and opts["listen"] == "1"
    url, _ = ffmpeg_open_args("udp://@:5000?pkt_size=1316")
    assert "pkt_size=1316" in url and "fifo_size" in url and "overrun_nonfatal=1" in url


def test_a_stream_that_never_answers_is_one_line(tmp_path):
    with socket.socket() as quiet:  # accepts the connection and then says nothing, as a hung server does
        quiet.bind(("127.0.0.1", 0))
        quiet.listen(1)
        url = f"http://127.0.0.1:{quiet.getsockname()[1]}/live.ts"
        r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "live", "--source", url, "--midi-out", "none",
                            "--config", str(config(tmp_path, connect_timeout_s=1.5))], capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 2, r.stderr[-800:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("cuecast: error:") and url in last and "no answer within 1.5 s" in last
    assert "Traceback" not in r.stderr


def test_refused_connection_is_one_line():
    port = free_port()
    with pytest.raises(SourceError, match="cannot open"):
        NetworkSource(f"http://127.0.0.1:{port}/x.mp4")


def test_http_clip_cuts_within_one_frame(clip, rx, tmp_path):
    path, cuts = clip
    server = HttpServer(path.parent)
    try:
        proc = live(server.url(path.name), rx, tmp_path, "--seed", "1")
        _, err = proc.communicate(timeout=90)
    finally:
        server.close()
    assert proc.returncode == 0, err[-800:]
    assert cuts_of(tmp_path) == pytest.approx(cuts, abs=FRAME + 1e-3)
    rx.drain()
    assert rx.note_ons() > 5 and rx.unmatched() == set()


def test_udp_push_cuts_within_one_frame(clip, rx, tmp_path):
    path, cuts = clip
    port = free_port(socket.SOCK_DGRAM)
    proc = live(f"udp://127.0.0.1:{port}", rx, tmp_path, "--duration", "7")
    wait_line(proc, "waiting for a stream")
    pusher = StreamPusher(path, f"udp://127.0.0.1:{port}?pkt_size=1316", "mpegts").start()
    _, err = proc.communicate(timeout=90)
    pusher.stop()
    assert pusher.error is None, pusher.error
    assert proc.returncode == 0, err[-800:]
    assert cuts_of(tmp_path) == pytest.approx(cuts, abs=FRAME + 1e-3)
    rx.drain()
    assert rx.unmatched() == set()


def test_rtmp_listener_takes_a_push(h264_clip, rx, tmp_path):
    path, cuts = h264_clip
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/cuecast"
    proc = live(url + "?listen=1", rx, tmp_path, "--duration", "7")
    wait_line(proc, "waiting for a stream")
    pusher = None
    for _ in range(50):  # the listener opens its socket a moment after saying so
        pusher = StreamPusher(path, url, "flv", open_timeout=5).start()
        pusher.join(0.3)
        if pusher.error is None:
            break
        time.sleep(0.1)
    _, err = proc.communicate(timeout=90)
    pusher.stop()
    assert pusher.error is None, pusher.error
    assert proc.returncode == 0, err[-800:]
    assert cuts_of(tmp_path) == pytest.approx(cuts, abs=FRAME + 1e-3)


def test_stream_cut_off_and_restored_keeps_playing(clip, rx, tmp_path):
    """The sender stops mid-way (the second shot), comes back 2 s later with its timestamps restarted; the
    engine plays on through the gap, reconnects, and every note ends."""
    path, _ = clip
    port = free_port(socket.SOCK_DGRAM)
    proc = live(f"udp://127.0.0.1:{port}", rx, tmp_path, "--duration", "9",
                "--config", str(config(tmp_path, read_timeout_s=0.5)))
    wait_line(proc, "waiting for a stream")
    url = f"udp://127.0.0.1:{port}?pkt_size=1316"
    first = StreamPusher(path, url, "mpegts", stop_at=1.8).start()
    first.join(30)
    rx.drain()
    before = rx.note_ons()
    time.sleep(2.0)  # nothing arrives: the music must carry on
    rx.drain()
    during = rx.note_ons() - before
    second = StreamPusher(path, url, "mpegts").start()
    _, err = proc.communicate(timeout=90)
    second.stop()
    assert first.error is None and second.error is None
    assert proc.returncode == 0, err[-800:]
    assert during > 0, "the music stopped while the stream was gone"
    tl = json.loads((tmp_path / "timeline.json").read_text())
    assert tl["stream"]["reconnects"] >= 1 and tl["stream"]["gaps"], tl.get("stream")
    assert tl["duration"] > 5.0  # media time ran on across the gap and through the second push
    time.sleep(0.05)
    rx.drain()
    assert rx.unmatched() == set() and rx.unmatched(strict=True) == set()


def test_render_takes_a_url(clip, tmp_path):
    path, cuts = clip
    server = HttpServer(path.parent)
    try:
        r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "render", server.url(path.name), "-o",
                            str(tmp_path), "-q", "--generator", "arranger"], capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr[-800:]
    tl = json.loads((tmp_path / "timeline.json").read_text())
    assert tl["input"] == server.url(path.name)
    assert [c["t"] for c in tl["cuts"] if c["kind"] == "hard"] == pytest.approx(cuts, abs=FRAME + 1e-3)
    import av

    with av.open(str(tmp_path / "soundtrack.mp4")) as mp4:  # the stream as it came, with the soundtrack
        assert mp4.streams.video and mp4.streams.audio
        assert mp4.duration / av.time_base == pytest.approx(3.6, abs=0.2)


def piped(source: str, record, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", source, "--midi-out", "none", "--lookahead", "1",
           "--record", str(record), "-q", "--generator", "arranger"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def write_all(path_or_file, data: bytes) -> threading.Thread:
    """Write from a thread, as a separate encoder would (opening a FIFO waits for its reader)."""
    def run():
        with (open(path_or_file, "wb") if isinstance(path_or_file, (str, os.PathLike)) else path_or_file) as f:
            f.write(data)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_fifo_is_refused_as_a_file_and_read_as_a_stream(clip, tmp_path):
    """A FIFO given as a file would hang a file reader: one line naming pipe:PATH. As pipe:PATH it is a
    live MPEG-TS stream (written at once here: cuecast paces it), and the writer closing it ends the run."""
    path, cuts = clip
    fifo = tmp_path / "in.ts"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "live", str(fifo), "--midi-out", "none"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == (f"cuecast: error: {fifo} is a named pipe (FIFO), not a video "
                                                      f"file; to read it as a live stream, give pipe:{fifo} (or - for "
                                                      "standard input)"), r.stderr
    proc = piped(f"pipe:{fifo}", tmp_path / "rec")
    writer = write_all(fifo, path.read_bytes())
    _, err = proc.communicate(timeout=90)
    writer.join(10)
    assert proc.returncode == 0, err[-800:]
    assert cuts_of(tmp_path / "rec") == pytest.approx(cuts, abs=FRAME + 1e-3)
    tl = json.loads((tmp_path / "rec" / "timeline.json").read_text())
    assert tl["duration"] == pytest.approx(3.6, abs=0.1)  # the whole stream, paced, then its end
    # render takes it too, to its end, with the picture kept for soundtrack.mp4
    writer = write_all(fifo, path.read_bytes())
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "render", f"pipe:{fifo}", "-o",
                        str(tmp_path / "render"), "--generator", "arranger"], capture_output=True, text=True, timeout=120)
    writer.join(10)
    assert r.returncode == 0, r.stderr[-800:]
    assert cuts_of(tmp_path / "render") == pytest.approx(cuts, abs=FRAME + 1e-3)
    assert (tmp_path / "render" / "soundtrack.mp4").stat().st_size > 10_000


def test_stdin_is_a_stream(clip, tmp_path):
    path, cuts = clip
    proc = piped("-", tmp_path, stdin=subprocess.PIPE)
    stdin, proc.stdin = proc.stdin, None  # the writer thread writes the bytes and closes it
    write_all(stdin.buffer, path.read_bytes())
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-800:]
    assert cuts_of(tmp_path) == pytest.approx(cuts, abs=FRAME + 1e-3)


def test_an_empty_stdin_ends_with_one_line(tmp_path):
    """stdin that closes without a stream (a failed upstream command) ends the run: a writer that is gone
    does not come back, so there is nothing to wait for (this once spun at full CPU for an hour)."""
    proc = piped("-", tmp_path, stdin=subprocess.DEVNULL)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-800:]
    assert "gave no video frames" in err and "Traceback" not in err


def test_a_late_reader_keeps_the_stream_timestamps_a_paused_sender_moves_them():
    from cuecast.streams.network import CATCH_UP_S, _Timestamps

    # our reader stalled 1.5 s: the waiting frames come in a burst, then on time again; media time is theirs
    clock = _Timestamps(live=True)
    walls = [k * FRAME if k < 50 else max(k * FRAME, 3.5 + (k - 50) * 0.005) for k in range(200)]
    assert [clock.video(k * FRAME, w, FRAME) for k, w in enumerate(walls)] == pytest.approx([k * FRAME for k in range(200)])
    assert clock.jumps == 0
    # a starved reader: 2 s behind within a second, then catching up slowly (a fifth of a second per second)
    clock = _Timestamps(live=True)
    lag = [0.0 if k < 50 else min(2.0 * (k - 50) / FPS, max(0.0, 2.0 - 0.2 * ((k - 75) / FPS))) for k in range(500)]
    assert [clock.video(k * FRAME, k * FRAME + lag[k], FRAME) for k in range(500)] == pytest.approx(
        [k * FRAME for k in range(500)])
    # the sender paused 2 s and goes on at its own pace: late for good, so media time moves on by that
    clock = _Timestamps(live=True)
    ts = [clock.video(k * FRAME, k * FRAME + (2.0 if k >= 50 else 0.0), FRAME) for k in range(200)]
    assert clock.jumps == 1
    moved = [k for k in range(1, 200) if ts[k] - ts[k - 1] > 1.0]
    assert len(moved) == 1 and 50 < moved[0] <= 50 + (CATCH_UP_S + 0.1) * FPS
    assert ts[-1] == pytest.approx(199 * FRAME + 2.0, abs=FRAME)
