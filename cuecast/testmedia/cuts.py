"""Synthetic clips with known boundaries: hard cuts, fades, dissolves, and the things that are not cuts
(flashes, brightness ramps, pans, fast motion). Used by the tests and by sanity checks of the tools;
real footage is for evaluation only.

A clip is a list of Shot; each shot says how it begins (a hard cut, a fade in from black, a dissolve from
the previous shot) and what happens inside it. render() gives the frames and the true boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass
class Shot:
    seconds: float
    enter: str = "cut"  # "cut", "dissolve", "fade_in" (from black); the first shot's enter is ignored
    enter_s: float = 0.0  # length of a dissolve or fade in
    exit_fade_s: float = 0.0  # fade out to black at the end of the shot (then the next shot fades in or cuts)
    pan: tuple[float, float] = (0.0, 0.0)  # camera move in pixels per frame (x, y)
    flashes: list[float] = field(default_factory=list)  # seconds into the shot of a flash
    flash_frames: int = 2  # how many frames each flash blows out
    ramp: float = 0.0  # brightness gain change over the shot (0.5: ends 50% brighter)
    mover: float = 0.0  # speed in px/frame of a large object crossing the picture (fast motion)
    seed: int | None = None


def texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A picture-like texture: smooth colour blobs, edges and a few rectangles, float 0..255."""
    img = np.zeros((h, w, 3))
    for scale in (8, 24, 64):
        gh, gw = h // scale + 2, w // scale + 2
        g = rng.uniform(-1, 1, size=(gh, gw, 3))
        up = np.kron(g, np.ones((scale, scale, 1)))[:h, :w]
        img += up * (60.0 / (1 + scale / 24))
    base = rng.uniform(60, 190, size=3)
    img += base
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        x1, y1 = x0 + rng.integers(8, w // 3), y0 + rng.integers(8, h // 3)
        img[y0:y1, x0:x1] = rng.uniform(0, 255, size=3)
    return np.clip(img, 0, 255)


def _shot_frames(shot: Shot, n: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    w, h = size
    px, py = shot.pan
    W = int(w + abs(px) * n + 4)
    H = int(h + abs(py) * n + 4)
    tex = texture(rng, W, H)
    obj = rng.uniform(0, 255, size=3)
    frames = []
    for k in range(n):
        x = int(round(px * k)) if px >= 0 else int(round(W - w + px * k)) - 1
        y = int(round(py * k)) if py >= 0 else int(round(H - h + py * k)) - 1
        x, y = min(max(x, 0), W - w), min(max(y, 0), H - h)
        img = tex[y:y + h, x:x + w].copy()
        if shot.mover:
            ox = int(shot.mover * k) % (w + w // 3) - w // 3
            img[h // 4: 3 * h // 4, max(0, ox): max(0, ox + w // 3)] = obj
        if shot.ramp:
            img *= 1.0 + shot.ramp * k / max(1, n - 1)
        frames.append(img)
    return frames


def render(shots: list[Shot], fps: float = 25.0, size: tuple[int, int] = (160, 90),
           seed: int = 0) -> tuple[list[np.ndarray], list[float], dict]:
    """Frames (uint8 RGB), their times, and the truth: {"hard": [t], "gradual": [(start, end, kind)],
    "flashes": [t]}. Times are those of frames: a cut's time is the new shot's first frame."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    truth: dict = {"hard": [], "gradual": [], "flashes": []}
    for i, shot in enumerate(shots):
        n = int(round(shot.seconds * fps))
        srng = np.random.default_rng(shot.seed) if shot.seed is not None else rng
        frames = _shot_frames(shot, n, size, srng)
        for ft in shot.flashes:  # a flash: a few frames blown out, then the same picture
            k = int(round(ft * fps))
            for j in range(k, min(n, k + shot.flash_frames)):
                frames[j] = frames[j] * 1.8 + 90
            truth["flashes"].append(len(out) / fps + ft)
        if shot.exit_fade_s:
            m = int(round(shot.exit_fade_s * fps))
            for j in range(m):
                frames[n - m + j] = frames[n - m + j] * (1 - (j + 1) / m)
            truth["gradual"].append(((len(out) + n - m) / fps, (len(out) + n - 1) / fps, "fade"))
        start = len(out)
        if i == 0 or shot.enter == "cut":
            if i:
                truth["hard"].append(start / fps)
            out.extend(frames)
            continue
        m = int(round(shot.enter_s * fps))
        if shot.enter == "fade_in":
            for j in range(m):
                frames[j] = frames[j] * (j / m)
            truth["gradual"].append((start / fps, (start + m) / fps, "fade"))
            out.extend(frames)
        elif shot.enter == "dissolve":  # the last m frames of the previous shot blend into this one
            s0 = len(out) - m
            for j in range(m):
                a = (j + 1) / (m + 1)
                out[s0 + j] = out[s0 + j] * (1 - a) + frames[j] * a
            truth["gradual"].append((s0 / fps, (s0 + m) / fps, "dissolve"))
            out.extend(frames[m:])
        else:
            raise ValueError(f"unknown shot entry {shot.enter!r}")
    imgs = [np.clip(f, 0, 255).astype(np.uint8) for f in out]
    times = [k / fps for k in range(len(imgs))]
    return imgs, times, truth


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    """Encode frames with libx264 (every frame a picture at 1/fps) for tests of the whole file path."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "18"}
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
