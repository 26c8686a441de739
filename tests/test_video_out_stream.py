"""`cuecast live --video-out udp://…` (MPEG-TS) end to end, measured from what arrives: the picture comes out
delayed by the lookahead against the input's own clock, and stays so when the machine stalls.

The input is pushed by the test over UDP as a live encoder would; every picture shows its frame number, so
each output picture is matched to the moment the test sent that frame. Output datagrams carry the kernel's
arrival time, so a loaded machine that runs the test's threads late does not move the measurement. Mid-way
cuecast is stopped (SIGSTOP) for 1.5 s, as a starved machine stops it: the stream's data waits in the
receive buffer, and afterwards the picture must be back at the lookahead, not 1.5 s later for good.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from stream_push import StreamPusher, UdpCapture, free_port

from cuecast.testmedia.video import make_counter_video, read_counter

FPS = 25
FRAME = 1 / FPS
LOOKAHEAD = 2.0
STALL_S = 1.5


@pytest.fixture(scope="module")
def counter_clip(tmp_path_factory, fluidsynth):
    path = tmp_path_factory.mktemp("vo_stream") / "counter.ts"
    make_counter_video(path, 20, fps=FPS, audio_hz=(330.0,), fmt="mpegts")
    return path


def arrivals(capture: UdpCapture, path) -> tuple[dict[int, float], list[str], int]:
    """{frame number shown: arrival time of its picture's first datagram}, the stream kinds, audio samples."""
    capture.save(path)
    came, shown, samples = {}, {}, 0
    with av.open(str(path)) as c:
        kinds = [s.type for s in c.streams]
        for packet in c.demux(c.streams.video[0], c.streams.audio[0]):
            if packet.stream.type == "video" and packet.pts is not None and packet.pos is not None and packet.pos >= 0:
                came[packet.pts] = capture.arrival(packet.pos)
            for f in packet.decode():
                if isinstance(f, av.VideoFrame):
                    shown[f.pts] = read_counter(f.to_ndarray(format="rgb24"))
                else:
                    samples += f.samples
    return {k: came[pts] for pts, k in shown.items() if k is not None and pts in came}, kinds, samples


def test_udp_stream_is_delayed_by_the_lookahead_through_a_stall(counter_clip, tmp_path):
    config = tmp_path / "light.toml"
    config.write_text("[emotion]\nfaces = false\n")  # what is measured is the picture's path: keep analysis light
    port_in, port_out = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    capture = UdpCapture(port_out)
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", f"udp://127.0.0.1:{port_in}",
           "--video-out", f"udp://127.0.0.1:{port_out}", "--lookahead", str(LOOKAHEAD), "--generator", "arranger",
           "--config", str(config), "-q", "--duration", "18"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    pusher = None
    try:
        line = ""
        while "waiting for a stream" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-800:]
        pusher = StreamPusher(counter_clip, f"udp://127.0.0.1:{port_in}?pkt_size=1316", "mpegts").start()
        while len(pusher.sent_at) < 8 * FPS:
            assert not pusher.done, pusher.error
            time.sleep(0.02)
        stalled = time.time()
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(STALL_S)
        os.kill(proc.pid, signal.SIGCONT)
        resumed = time.time()
        err = proc.communicate(timeout=90)[1]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        capture.stop()
        if pusher is not None:
            pusher.stop()
    assert proc.returncode == 0, err[-1500:]
    assert pusher.error is None, pusher.error
    came, kinds, samples = arrivals(capture, tmp_path / "out.ts")
    assert kinds == ["video", "audio"] and samples > 5 * 44100  # both streams decode
    sent = pusher.sent_at
    delay = {k: t - sent[k] for k, t in came.items() if k < len(sent)}
    # from the second second (the stream's probe and the encoders' start) to pictures due before the stall;
    # pictures encoded before it and due during it go out late, once (a picture cannot be taken back)
    before = np.array([d for k, d in delay.items() if k >= FPS and sent[k] < stalled - LOOKAHEAD - 1.0])
    after = np.array([d for k, d in delay.items() if sent[k] > resumed + 1.0])
    assert len(before) > 1.5 * FPS and len(after) > 3 * FPS, (len(before), len(after))
    print(f"delay before the stall {np.median(before):.3f} s, after {np.median(after):.3f} s (lookahead {LOOKAHEAD} s)")
    # the lookahead, plus what reading and writing a stream costs: the input's demuxer finishes a picture when
    # the next one's data comes (a frame), the output's muxer sends it with the audio after it (1-2 AAC
    # frames), and a loaded machine's scheduling
    assert LOOKAHEAD - FRAME <= np.median(before) <= LOOKAHEAD + 8 * FRAME, np.median(before)
    # steady: nearly every picture within two frames of that; after the stall, back where it was
    for part in (before, after):
        assert np.mean(np.abs(part - np.median(part)) <= 2 * FRAME) >= 0.9, np.round(part, 3)
    assert abs(np.median(after) - np.median(before)) <= 1.5 * FRAME, (np.median(before), np.median(after))
