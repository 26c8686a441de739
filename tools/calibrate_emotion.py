"""Calibrate the picture-affect signals on ordinary footage: the centre and scale of each signal.

    python tools/calibrate_emotion.py                       # the packaged calibration set, written to the shipped JSON
    python tools/calibrate_emotion.py CLIP_OR_DIR ... --out my_calibration.json
    # then: emotion.calibration = "my_calibration.json" in the config (empty: the shipped one)

The default set is tools/packaged_clips.py's CALIBRATION: everyday clips that Debian packages ship (fetched
with apt-get download into a cache; its HELD_OUT clips and ../shared/media are never in it). A clip shorter
than MIN_S plays forwards and backwards until it is that long (no jump, so no false cut); a longer one counts
its first MAX_S. Every clip runs through the emotion estimator (picture only, adaptation off) and each full
window's raw signals are kept: mean brightness, saturation, colourfulness and warmth, the two motion percentiles (frame to frame and over 0.2 s),
and the cut rate. Besides each clip
as it is, the set holds everyday variants of it made with numpy (a little darker and brighter, less and
more saturated, warmer and colder, half and double speed, a slow pan and a handheld shake) and one montage that cuts between all the clips
every 1.5-4 s. By default the variants are only a double-speed copy and a handheld camera (the sixteen
clips' own spread covers colour); --all-variants adds recoloured, slower and panned copies, for when few
clips are given.

Each signal is centred on its median over the set (the cut rate on its mean: MEAN_CENTRED) and scaled by its robust
spread (interquartile range / 1.349); motion and cut rate on a log scale (twice as fast, or twice as many cuts, is one step whatever the
level). Then the two combined scores (Valdez & Mehrabian's pleasure and the colour + motion + cut arousal, affect.pleasure_arousal_scores) are
centred and scaled the same way. Every source clip weighs the same, however long it is. The result is
data, a JSON file; models/weights/EMOTION_MODEL_CARD.md lists the set it was made from.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from cuecast.models.emotion.affect import CALIBRATION, MOTION_LAG_S, SIGNALS, Calibration, pleasure_arousal_scores  # noqa: E402
from cuecast.models.emotion.config import EmotionConfig  # noqa: E402
from cuecast.models.emotion.estimator import EmotionEstimator  # noqa: E402
from cuecast.streams.video import FileDecoder  # noqa: E402
from cuecast.types import Frame, SourceError  # noqa: E402
from eval_emotion import drive, find_clips  # noqa: E402
from packaged_clips import CALIBRATION as PACKAGED_SET  # noqa: E402
from packaged_clips import fetch  # noqa: E402

MIN_S, MAX_S = 8.0, 60.0  # each source clip is looped up to MIN_S and cut at MAX_S of media time
# signals standardised as log(value + eps) (affect.LOG_SIGNALS): motion's eps stands for a still picture; the cut
# rate's is one cut in the default 6 s count (its resolution), so no cut at all is a finite, calm reading
# motion_lag is measured over affect.MOTION_LAG_S and normalised per 1/30 s, which divides that noise by 30 * lag (noise
# does not add up over the lag), so its eps is divided alike
LOG_EPS = {"motion": 0.003, "motion_lag": round(0.003 / (30 * MOTION_LAG_S), 6), "cut_rate": round(1.0 / 6.0, 5)}
# signals centred on their (weighted) mean rather than their median. The cut rate is one-sided: most ordinary windows
# have no cut (60% of the default set's), so its median is its floor, no cut at all. Centred there, every cut counts
# upwards from 'never cuts', a picture at every signal's centre reads calmer than ordinary footage (A -0.19: the
# combined score's median lies above it), and the soft limit began at ~1.1 cuts/s. Its mean log rate is ordinary
# footage's pace (~1 cut in 8 s), so a long-held shot reads a little calm and faster cutting busy (ninth pass)
MEAN_CENTRED = ("cut_rate",)
MIN_SCALE = {"cut_rate": 0.5, "motion": 0.5, "motion_lag": 0.5}  # floors (log units): most ordinary windows have no cut at all
# output = affect.bounded(gain * standardised score) (tanh near the origin, sixth pass), one gain per axis. Valence: the middle half of ordinary footage (its
# quartiles, +-0.6745 spreads of a robustly standardised score) reads within +-NEUTRAL_BAND, the outer quarters
# lean, and a strongly coloured scene (3 spreads) reads ~0.8: colour and brightness are weak evidence of valence
# (Valdez & Mehrabian's effects are modest; Hanjalic & Xu 2005 model arousal from motion and cuts, and find
# valence the harder axis), so ordinary variation in them only leans the music's mode. Arousal keeps 0.8 (one
# spread reads +-0.66): motion and cut rate are the direct, well-established evidence, and a faster or busier
# picture should be heard in the density.
NEUTRAL_BAND = 0.30
VALENCE_GAIN = round(math.atanh(NEUTRAL_BAND) / 0.6745, 4)  # 0.4589
AROUSAL_GAIN = 0.8


def colour(img: np.ndarray, sat: float = 1.0, gain: float = 1.0, warm: float = 0.0) -> np.ndarray:
    f = img.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = (grey + sat * (f - grey)) * gain + np.array([warm, 0.0, -warm], np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)


VARIANTS = ("original", "double_speed", "handheld")  # default: the real clips' own spread carries the colour range
ALL_VARIANTS = ("original", "darker", "brighter", "less_saturated", "more_saturated", "warmer", "colder",
                "half_speed", "double_speed", "slow_pan", "handheld")


def everyday_variants(frames: list[Frame], names=VARIANTS) -> dict[str, list[Frame]]:
    """Milder than the evaluation's treatments: how the same scene looks on another camera or day."""
    n = len(frames)
    dt = frames[1].t - frames[0].t if len(frames) > 1 else 0.04

    def recolour(**kw):
        return [Frame(f.t, f.index, colour(f.image, **kw)) for f in frames]
    make = {
        "original": lambda: frames,
        "darker": lambda: recolour(gain=0.8), "brighter": lambda: recolour(gain=1.2),
        "less_saturated": lambda: recolour(sat=0.7), "more_saturated": lambda: recolour(sat=1.3),
        "warmer": lambda: recolour(warm=15.0), "colder": lambda: recolour(warm=-15.0),
        "half_speed": lambda: [Frame(2 * f.t + k * dt, 2 * f.index + k, f.image) for f in frames for k in (0, 1)],
        "double_speed": lambda: [Frame(f.t / 2, i, f.image) for i, f in enumerate(frames[::2])],
        "slow_pan": lambda: camera(frames, np.stack([0.6 * np.arange(n), np.zeros(n)], axis=1)),
        "handheld": lambda: camera(frames, np.cumsum(np.random.default_rng(0).normal(0.0, 1.0, (n, 2)), axis=0)),
    }
    return {k: make[k]() for k in names}


def camera(frames: list[Frame], offsets: np.ndarray, margin: float = 0.1) -> list[Frame]:
    """The clip seen by a moving camera: an 80% crop at offsets[i] (x, y pixels), bouncing inside the
    frame; most everyday footage is not shot from a tripod."""
    h, w = frames[0].image.shape[:2]
    mh, mw = max(1, int(h * margin)), max(1, int(w * margin))
    out = []
    for f, (x, y) in zip(frames, offsets):
        px = int(abs((x + 2 * mw) % (4 * mw) - 2 * mw))  # bounce within [0, 2 * margin]
        py = int(abs((y + 2 * mh) % (4 * mh) - 2 * mh))
        out.append(Frame(f.t, f.index, f.image[py:py + h - 2 * mh, px:px + w - 2 * mw]))
    return out


def montage(clips: dict[str, list[Frame]], seconds: float = 60.0, fps: float = 25.0, seed: int = 0) -> list[Frame]:
    """Shots of 1.5-4 s from all the clips in turn, each from a random point: an edited sequence, every
    shot scaled to the first clip's frame size (one stream has one size)."""
    import cv2
    rng = np.random.default_rng(seed)
    names, out, t = sorted(clips), [], 0.0
    h, w = clips[names[0]][0].image.shape[:2]
    k = 0
    while t < seconds:
        src = clips[names[k % len(names)]]
        length = float(rng.uniform(1.5, 4.0))
        t0 = float(rng.uniform(src[0].t, max(src[0].t, src[-1].t - length)))
        ts = np.array([f.t for f in src])
        for j in range(int(length * fps)):
            i = min(int(np.searchsorted(ts, t0 + j / fps)), len(src) - 1)
            img = src[i].image
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            out.append(Frame(t + j / fps, len(out), img))
        t += int(length * fps) / fps
        k += 1
    return out


def first_frames(path: Path, seconds: float) -> list[Frame]:
    """The clip's frames up to `seconds` after its first (all that fit_length keeps), without decoding the rest: an
    hour of one's own footage would not fit in memory at ~170 kB a frame."""
    frames: list[Frame] = []
    for item in FileDecoder(path, analysis_width=320, audio=False):
        if isinstance(item, Frame):
            if frames and item.t - frames[0].t > seconds:
                break
            frames.append(item)
    return frames


def fit_length(frames: list[Frame], min_s: float = MIN_S, max_s: float = MAX_S, max_fps: float = 30.0) -> list[Frame]:
    """At least min_s (forwards, backwards, forwards...: the motion is the clip's own, and no cut), at most
    max_s, at most max_fps (a high-speed camera clip keeps every k-th frame, its motion per 1/30 s is the same)."""
    dt = (frames[-1].t - frames[0].t) / max(len(frames) - 1, 1) or 0.04
    step = max(1, int(round(1.0 / (dt * max_fps))))
    frames, dt = frames[::step], dt * step
    out, order, k = [], frames, 0
    while not out or out[-1].t < min_s:
        for f in (order if k == 0 else order[1:]):
            out.append(Frame(len(out) * dt, len(out), f.image))
        order, k = order[::-1], k + 1
    return [f for f in out if f.t <= max(max_s, min_s)]


def window_signals(frames: list[Frame], cfg: EmotionConfig) -> list[dict]:
    est = EmotionEstimator(cfg)
    est.record_signals = True
    drive(est, frames)  # with the engine's cut detector, as in a render
    # full windows only: the first ones are short (they start at 0) and their cut rate is uncertain
    return [s for s in est.signals if s["end"] - s["start"] >= cfg.window_s - 1e-6]


def weighted_quantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    order = np.argsort(x)
    x, w = x[order], w[order]
    cw = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(q, cw, x)


def centre_scale(x: np.ndarray, w: np.ndarray, floor: float = 1e-3) -> tuple[float, float]:
    q25, q50, q75 = weighted_quantile(x, w, [0.25, 0.5, 0.75])
    return float(q50), float(max((q75 - q25) / 1.349, floor))


def calibrate(rows: list[dict], gain: tuple[float, float] = (VALENCE_GAIN, AROUSAL_GAIN)) -> dict:
    """rows: {"clip": source clip, **raw signals}. Returns the calibration JSON (without its provenance)."""
    per_clip = {}
    for r in rows:
        per_clip[r["clip"]] = per_clip.get(r["clip"], 0) + 1
    w = np.array([1.0 / per_clip[r["clip"]] for r in rows])  # every source clip weighs the same
    signals = {}
    for k in SIGNALS:
        x = np.array([r[k] for r in rows], dtype=np.float64)
        if k in LOG_EPS:
            x = np.log(np.maximum(x, 0.0) + LOG_EPS[k])
        c, s = centre_scale(x, w, MIN_SCALE.get(k, 1e-3))
        if k in MEAN_CENTRED:
            c = float(np.average(x, weights=w))
        signals[k] = {"centre": round(c, 5), "scale": round(s, 5),
                      **({"transform": "log", "eps": LOG_EPS[k]} if k in LOG_EPS else {}),
                      **({"centre_on": "mean"} if k in MEAN_CENTRED else {})}
    cal = Calibration(centre={k: v["centre"] for k, v in signals.items()},
                      scale={k: v["scale"] for k, v in signals.items()}, log_eps=dict(LOG_EPS),
                      valence=(0.0, 1.0), arousal=(0.0, 1.0), gain=gain)
    scores = np.array([pleasure_arousal_scores(cal, *(r[k] for k in SIGNALS)) for r in rows])
    pv, pa = centre_scale(scores[:, 0], w), centre_scale(scores[:, 1], w)
    return {"signals": signals, "valence": {"centre": round(pv[0], 5), "scale": round(pv[1], 5)},
            "arousal": {"centre": round(pa[0], 5), "scale": round(pa[1], 5)},
            "gain": {"valence": gain[0], "arousal": gain[1]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Without clips it uses Debian opencv-doc's examples (apt-get install opencv-doc).")
    ap.add_argument("clips", nargs="*", help="video files or folders of them (default: tools/packaged_clips.py's calibration set)")
    ap.add_argument("--out", default=str(CALIBRATION), help="JSON to write (default: the shipped calibration)")
    ap.add_argument("--valence-gain", type=float, default=VALENCE_GAIN, help="valence = bounded(gain * standardised score), ~tanh near 0 (default %(default)s)")
    ap.add_argument("--arousal-gain", type=float, default=AROUSAL_GAIN, help="arousal = bounded(gain * standardised score), ~tanh near 0 (default %(default)s)")
    ap.add_argument("--rows-out", help="also write every window's raw signals to this JSON (to study a transform without re-running)")
    ap.add_argument("--no-variants", action="store_true", help="only the clips as they are, no everyday variants or montage")
    ap.add_argument("--all-variants", action="store_true", help="also darker/brighter, less/more saturated, warmer/colder, "
                    "half speed and a slow pan of every clip (for a narrow set of clips; 4x slower)")
    args = ap.parse_args()
    clips = find_clips(args.clips) if args.clips else fetch(PACKAGED_SET)
    if not clips:
        sys.exit("calibrate_emotion: no clips (apt-get update, so that the packaged set can be fetched, or name some clips)")
    cfg = EmotionConfig(faces=False, audio=False, adapt_s=0.0)  # the calibrated, non-adaptive path
    decoded: dict[str, list[Frame]] = {}
    for p in clips:
        try:
            frames = first_frames(p, MAX_S)
        except SourceError as e:
            print(f"skipping {p}: {e}", file=sys.stderr)
            continue
        if len(frames) > 2:
            decoded[p.name] = fit_length(frames)
    rows, members = [], []
    for name, frames in decoded.items():
        sets = {"original": frames} if args.no_variants else \
            everyday_variants(frames, ALL_VARIANTS if args.all_variants else VARIANTS)
        for variant, fr in sets.items():
            got = window_signals(fr, cfg)
            rows += [{"clip": name, **s} for s in got]
            members.append(f"{name} ({variant}, {len(got)} windows)")
        print(f"{name}: {len(frames)} frames, {len(sets)} versions", file=sys.stderr)
    if not args.no_variants and len(decoded) > 1:
        got = window_signals(montage(decoded, seconds=max(60.0, 8.0 * len(decoded))), cfg)
        rows += [{"clip": "montage", **s} for s in got]
        members.append(f"montage of all clips, shots of 1.5-4 s ({len(got)} windows)")
    members += [f"source: {pkg} {path}" for pkg, path, _ in PACKAGED_SET] if not args.clips else []
    if not rows:
        sys.exit("calibrate_emotion: no full windows in the clips (each needs more than one window's length)")
    if args.rows_out:
        Path(args.rows_out).write_text(json.dumps(rows))
    data = {"about": "Centre and scale of the picture-affect signals on ordinary footage; made by "
                     "tools/calibrate_emotion.py, read by cuecast.models.emotion.affect.load_calibration",
            "made": datetime.date.today().isoformat(), "set": members, "windows": len(rows), **calibrate(rows, (args.valence_gain, args.arousal_gain))}
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({k: data[k] for k in ("signals", "valence", "arousal", "gain")}, indent=1))
    print(f"wrote {args.out} ({len(rows)} windows from {len(decoded)} clips)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
