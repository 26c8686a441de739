"""VideoOut and MediaWriter on their own: a real clip's pictures at real-time pace, FluidSynth music in media
time, written to a file; everything checked by decoding the file (cuts in the picture, onsets in the sound)."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from media_check import decode, nearest, onsets, picture_cuts

from cuecast.engine.clock import RealtimeClock
from cuecast.streams.audio_render import StreamingSynth
from cuecast.testmedia.video import make_counter_video, make_test_video
from cuecast.streams.video_out import VideoOut, VideoOutError, auto_kbps, parse_target
from cuecast.types import Note

FPS = 25
RATE = 44100


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("vo") / "clip.mp4"
    cuts = make_test_video(path, [(1.2, (200, 60, 60)), (1.0, (60, 200, 60)), (1.4, (60, 60, 200)), (0.8, (200, 200, 60))],
                           fps=FPS, audio_hz=440.0)
    return path, cuts


def play(clip_path, out, synth, lookahead=0.5, mix=0.0, stop_at=None, audio=False):
    """Feed the clip's pictures (and its sound) at real-time pace, as a live source does; close at the end."""
    clock = RealtimeClock(lookahead)
    said = []
    vo = VideoOut(str(out), synth, clock, RATE, fps=FPS, mix_input=mix, say=said.append)
    t0 = time.monotonic()
    last = 0.0
    with av.open(str(clip_path)) as c:
        streams = [c.streams.video[0]] + ([c.streams.audio[0]] if audio else [])
        for packet in c.demux(streams):
            for f in packet.decode():
                t = float(f.pts * f.time_base)
                if stop_at is not None and t >= stop_at:
                    break
                if isinstance(f, av.AudioFrame):
                    vo.input_sound(f, t)  # as decoded: its own rate and channels
                    continue
                delay = t0 + t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                clock.arrived(t, time.monotonic())
                clock.observe(t)
                vo.picture(f, t)
                last = t
    if stop_at is None:
        vo.close(end=last + 1 / FPS)
    else:
        time.sleep(lookahead / 2)  # stopped while half the lookahead of pictures is still held back
        vo.close()
    return vo, said


def chords_on(cuts):
    return [Note(c, c + 0.5, p, 112, "chords") for c in [0.0, *cuts] for p in (57, 60, 64)]


def test_picture_and_chords_in_sync_in_the_file(tmp_path, clip, fluidsynth):
    path, cuts = clip
    synth = StreamingSynth({"chords": (3, 0)}, RATE)
    synth.notes(chords_on(cuts))
    out = tmp_path / "out.mp4"
    vo, said = play(path, out, synth)
    synth.release()
    assert not vo.status.error
    times, pics, audio, rate, kinds, a0 = decode(str(out))
    assert kinds == ["video", "audio"] and rate == RATE
    assert len(times) == vo.status.written == round(4.4 * FPS) - vo.status.dropped
    assert abs(a0 + len(audio) / rate - 4.4) < 0.05  # the sound lasts as long as the picture
    seen = picture_cuts(times, pics)
    assert seen == pytest.approx(cuts, abs=0.5 / FPS)
    found = onsets(audio, rate, a0)
    assert len(found) == len(cuts)  # the chord on each cut, nothing else (the one at 0 has no silence before it)
    for c in seen:
        assert nearest(found, c) <= 1 / FPS, c


def test_stopped_early_the_file_still_plays(tmp_path, clip, fluidsynth):
    path, cuts = clip
    synth = StreamingSynth({"chords": (3, 0)}, RATE)
    synth.notes(chords_on(cuts))
    out = tmp_path / "stopped.mkv"
    vo, _ = play(path, out, synth, lookahead=1.0, stop_at=3.0)
    synth.release()
    times, pics, audio, rate, kinds, a0 = decode(str(out))
    assert kinds == ["video", "audio"]
    # what had played when it stopped: about stop - lookahead + the half lookahead waited, both streams
    assert 2.0 < times[-1] < 3.0 and abs(a0 + len(audio) / rate - (times[-1] + 1 / FPS)) < 0.1
    assert len(times) == vo.status.written


def test_input_sound_mixed_under_the_music(tmp_path, clip):
    path, _ = clip
    out = tmp_path / "mix.mp4"
    play(path, out, None, mix=0.5, audio=True)  # no music: only the input's sound, at half its level
    _, _, audio, rate, _, a0 = decode(str(out))
    mid = audio[int(1.0 * rate):int(3.0 * rate), 0]
    assert np.sqrt(np.mean(mid ** 2)) == pytest.approx(0.5 * 0.3 / np.sqrt(2), rel=0.15)  # the clip's 0.3 tone
    spectrum = np.abs(np.fft.rfft(mid[:rate]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2


def tone_level(x: np.ndarray, rate: int, hz: float) -> float:
    """Amplitude of the sine at hz in x (a Hann-windowed spectrum's peak there)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) * 4 / len(x)
    k = int(round(hz * len(x) / rate))
    return float(spectrum[k - 2:k + 3].max())


def test_stereo_input_sound_keeps_both_sides(tmp_path):
    """A 48 kHz stereo input, 440 Hz left and 660 Hz right, mixed at half level into a 44.1 kHz output:
    each side keeps its own tone at its level, and not the other's."""
    clip = tmp_path / "stereo.mp4"
    make_counter_video(clip, 3.0, fps=FPS, audio_hz=(440.0, 660.0))
    out = tmp_path / "mix.mkv"
    play(clip, out, None, mix=0.5, audio=True)
    _, _, audio, rate, _, _ = decode(str(out))
    assert rate == RATE and audio.shape[1] == 2
    left, right = audio[int(0.5 * rate):int(2.5 * rate), 0], audio[int(0.5 * rate):int(2.5 * rate), 1]
    assert tone_level(left, rate, 440) == pytest.approx(0.15, rel=0.15)
    assert tone_level(right, rate, 660) == pytest.approx(0.15, rel=0.15)
    assert tone_level(left, rate, 660) < 0.01 and tone_level(right, rate, 440) < 0.01


def test_targets():
    assert parse_target("a.mp4").format == "mp4" and parse_target("b.MKV").format == "matroska"
    t = parse_target("udp://127.0.0.1:5000")
    assert (t.format, t.is_file, t.url) == ("mpegts", False, "udp://127.0.0.1:5000?pkt_size=1316")
    assert parse_target("rtmp://127.0.0.1/live/key").format == "flv"
    assert parse_target("srt://127.0.0.1:9000?mode=caller").format == "mpegts"
    for bad in ("out.avi", "http://x/y", "out"):
        with pytest.raises(VideoOutError):
            parse_target(bad)
    assert 2500 < auto_kbps(1280, 720, 30) < 3000 and auto_kbps(3840, 2160, 60) == 6000


def test_unwritable_target_is_a_clear_error(tmp_path):
    with pytest.raises(VideoOutError, match="cannot write"):
        VideoOut(str(tmp_path / "no" / "such" / "dir.mp4"), None, RealtimeClock(0.5), RATE)


def test_a_file_source_taps_its_sound_as_decoded(tmp_path):
    """What --video-out mixes comes from the source's tap at the input's own rate and channels; the
    analysis still gets its mono blocks and never sees those frames."""
    import asyncio

    from cuecast.streams.video import FileSource
    from cuecast.types import AudioChunk, Frame, InputSound

    clip = tmp_path / "stereo.mp4"
    make_counter_video(clip, 1.0, fps=FPS, audio_hz=(440.0, 660.0))
    source = FileSource(clip, keep_picture=True)
    tapped = []
    source.tap(tapped.append)

    async def take():
        kinds = set()
        async for item in source:
            kinds.add(type(item))
        await source.close()
        return kinds

    assert asyncio.run(take()) == {Frame, AudioChunk}
    sounds = [i for i in tapped if isinstance(i, InputSound)]
    assert sounds and all(s.frame.sample_rate == 48000 and len(s.frame.layout.channels) == 2 for s in sounds)
    assert sum(s.frame.samples for s in sounds) == pytest.approx(48000, abs=2048)
    assert [round(s.t, 3) for s in sounds[:2]] == [0.0, round(1024 / 48000, 3)]


def test_an_encoder_that_falls_behind_drops_pictures_and_the_delay_stays(tmp_path):
    """2160p noise at 50 fps to a udp:// stream: more than a 2-core machine's encoder can take in real time. Pictures
    are dropped (and that is said at once); the ones sent arrive a lookahead after they came, plus the time
    to encode one, however far behind the encoder is; measured from the datagrams' arrival times."""
    import socket

    from stream_push import UdpCapture, free_port

    lookahead, fps, seconds = 1.5, 50, 6
    port = free_port(socket.SOCK_DGRAM)
    capture = UdpCapture(port)
    clock = RealtimeClock(lookahead)
    said = []
    vo = VideoOut(f"udp://127.0.0.1:{port}", None, clock, RATE, fps=fps, say=said.append)
    rng = np.random.default_rng(0)
    noise = [av.VideoFrame.from_ndarray(rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8), format="rgb24")
             .reformat(format="yuv420p") for _ in range(4)]
    fed = []
    t0 = time.monotonic()
    for k in range(seconds * fps):
        t = k / fps
        delay = t0 + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        clock.arrived(t, time.monotonic())
        clock.observe(t)
        fed.append(time.time())
        vo.picture(noise[k % 4], t)
    vo.close()
    capture.stop()
    if not vo.status.dropped:
        pytest.skip("this machine encodes 2160p50 noise in real time (more than 2 cores?): nothing to drop")
    assert said and "falls behind" in said[0]
    capture.save(tmp_path / "out.ts")
    came = []
    with av.open(str(tmp_path / "out.ts")) as c:
        for p in c.demux(c.streams.video[0]):
            if p.pts is not None and p.pos is not None and p.pos >= 0:
                came.append((float(p.pts * p.time_base), capture.arrival(p.pos)))
    came.sort()
    first = came[0][0]  # picture 0: the encoder was idle when it came, so it is never dropped
    delays = np.array([at - fed[int(round((pts - first) * fps))] for pts, at in came])
    assert vo.status.written - 2 <= len(delays) <= vo.status.written and len(delays) >= 5, \
        (vo.status.written, len(delays), capture.overflowed, capture.rcvbuf)  # (a loaded loopback may lose a
    # datagram when the capture's receive buffer is full, and the picture it began: capture.overflowed says)
    assert delays.min() >= lookahead - 0.1
    assert delays.max() <= lookahead + 1.0, np.round(delays, 2)  # one picture's encoding, on a loaded machine
    third = len(delays) // 3
    assert np.median(delays[-third:]) <= np.median(delays[:third]) + 0.25, np.round(delays, 2)  # not growing
