"""Synthetic video clips for the tests, the demo and sanity checks of the tools: textured shots of chosen
colours and motion, with hard cuts at known times (and a tone track if asked). Never used by the engine.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _scene(rng: np.random.Generator, h: int, w: int, colour) -> np.ndarray:
    """A textured picture around a base colour: coarse blocks, a few shapes and a wave of random angle."""
    yy, xx = np.mgrid[0:h, 0:w]
    block = max(4, w // 20)
    texture = rng.integers(-45, 45, size=(h // block + 1, w // block + 1, 3))
    img = np.array(colour, float)[None, None, :] + np.kron(texture, np.ones((block, block, 1)))[:h, :w]
    angle, period = rng.uniform(0, np.pi), rng.uniform(w / 12, w / 3)
    img += 25 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(h / 10, h / 4)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(-70, 70, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_test_video(path: str | Path, segments: list[tuple], fps: float = 25.0,
                    size: tuple[int, int] = (320, 180), motion: float = 0.0, audio_hz: float | None = None,
                    codec: str = "libx264") -> list[float]:
    """Write a synthetic clip: each segment is (seconds, base RGB colour[, motion px/frame]), textured.

    Returns the cut times (the first frame of each new segment). Used by tests and by `cuecast demo`.
    """
    container = av.open(str(path), "w")
    rate = Fraction(fps).limit_denominator(1001)
    vs = container.add_stream(codec, rate=rate)
    vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
    vs.options = {"g": "250", "keyint_min": "250", "sc_threshold": "0"} if codec == "libx264" else {}
    a_stream = None
    if audio_hz:
        a_stream = container.add_stream("aac", rate=44100)
        a_stream.layout = "mono"
    h, w = size[1], size[0]
    cuts, n, t = [], 0, 0.0
    rng = np.random.default_rng(0)
    for si, (seconds, colour, *rest) in enumerate(segments):
        seg_motion = rest[0] if rest else motion
        if si:
            cuts.append(n / float(rate))
        scene = _scene(rng, h, w, colour)  # every shot has its own layout, as real shots do
        count = int(round(seconds * float(rate)))
        for k in range(count):
            img = np.roll(scene, int(seg_motion * k), axis=1)[:, :w]
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
            n += 1
        t += seconds
    for packet in vs.encode():
        container.mux(packet)
    if a_stream is not None:
        total = int(t * 44100)
        tt = np.arange(total) / 44100
        wave = (0.3 * np.sin(2 * np.pi * audio_hz * tt)).astype(np.float32)
        for i in range(0, total, 1024):
            chunk = wave[i:i + 1024][None, :]
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, i
            for packet in a_stream.encode(af):
                container.mux(packet)
        for packet in a_stream.encode():
            container.mux(packet)
    container.close()
    return cuts


COUNTER_BITS = 12  # frame numbers up to 4095: 2 min 43 s at 25 fps


def make_counter_video(path: str | Path, seconds: float, fps: float = 25.0, size: tuple[int, int] = (320, 180),
                       audio_hz: tuple[float, ...] = (), gop: int = 12, fmt: str | None = None) -> int:
    """A clip whose every picture shows its own frame number as a row of black and white blocks along the top
    (read back with read_counter, through any lossy codec), over a slowly changing colour. audio_hz: one tone
    per channel (one: mono, two: stereo left/right), 0.3 peak each. Keyframes every `gop` frames, no B-frames,
    so a receiver joining a stream finds a picture soon. Returns the number of frames."""
    container = av.open(str(path), "w", format=fmt)
    rate = Fraction(fps).limit_denominator(1001)
    vs = container.add_stream("libx264", rate=rate)
    w, h = size
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
    a_stream = None
    if audio_hz:
        a_stream = container.add_stream("aac", rate=48000, layout="stereo" if len(audio_hz) == 2 else "mono")
    count = int(round(seconds * float(rate)))
    waves = None
    if a_stream is not None:
        tt = np.arange(int(count / float(rate) * 48000)) / 48000
        waves = np.stack([0.3 * np.sin(2 * np.pi * hz * tt) for hz in audio_hz]).astype(np.float32)
    audio_at = 0  # samples written: the sound goes in beside the pictures (a stream reader probes both early)
    bar = h // 5
    for k in range(count):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (np.array([90, 120, 160]) + 60 * np.sin(k / 20 + np.arange(3))).astype(np.uint8)
        img[:bar] = 0
        for bit in range(COUNTER_BITS):
            if k >> bit & 1:
                img[:bar, bit * w // COUNTER_BITS:(bit + 1) * w // COUNTER_BITS] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = k
        for packet in vs.encode(frame):
            container.mux(packet)
        while waves is not None and audio_at < min(waves.shape[1], (k + 1) / float(rate) * 48000):
            _encode_audio(container, a_stream, waves, audio_at)
            audio_at += 1024
    for packet in vs.encode():
        container.mux(packet)
    if a_stream is not None:
        for packet in a_stream.encode():
            container.mux(packet)
    container.close()
    return count


def _encode_audio(container, stream, waves: np.ndarray, at: int) -> None:
    layout = "stereo" if waves.shape[0] == 2 else "mono"
    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(waves[:, at:at + 1024]), format="fltp", layout=layout)
    af.sample_rate, af.pts = 48000, at
    for packet in stream.encode(af):
        container.mux(packet)


def read_counter(picture: np.ndarray) -> int | None:
    """The frame number make_counter_video drew into an RGB picture (any size), or None when the bar is not
    clean black and white (not such a picture, or damaged)."""
    h, w = picture.shape[:2]
    bar = h // 5
    value = 0
    for bit in range(COUNTER_BITS):
        x0, x1 = bit * w // COUNTER_BITS, (bit + 1) * w // COUNTER_BITS
        # the middle of the block: away from the codec's ringing at the edges
        level = float(picture[bar // 4:bar * 3 // 4, x0 + (x1 - x0) // 4:x1 - (x1 - x0) // 4].mean())
        if 60 < level < 195:
            return None
        value |= (level >= 195) << bit
    return value
