"""Make training and evaluation data for the cut forecaster by editing real footage.

Real clips are split into their own shots (by the online detector), then re-cut into edits with known
editing rhythms: steady (about the same shot length throughout), accelerating/decelerating, on a beat
grid (with a synthetic beat track as the edit's audio), and random. Each edit is played through the
online detector and the forecaster's ContextTracker exactly as the engine would, frame by frame with its
audio, and what the forecaster would have known at every tick is saved with the detector's cuts (the
labels: no hand labelling) to one .npz per edit. --write-video also writes some edits as .mp4 with their
audio for a look, or for tools/eval_cuts.py --video.

    python tools/make_edits.py --out data/edits --n 240
    python tools/make_edits.py --out data/edits --media ~/my/videos --n 400
    python tools/make_edits.py --out data/edits-test --seed 1 --n 48 --only issue-195-aspect-ratio.mp4 ...

Held-out evaluation edits should come from footage (--only / --exclude) and a seed not used in training.

Default footage: ../shared/media (when present) and Debian opencv-doc's examples/data videos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from cuecast.models.cuts.config import CutConfig
from cuecast.models.cuts.detector import OnlineCutDetector
from cuecast.models.cuts.forecast import BIN_S, ContextTracker, next_tick_after
from cuecast.types import AudioChunk, Frame

RHYTHMS = ("steady", "accelerating", "beat", "random")
AUDIO_RATE = 22050
VIDEO_EXT = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts"}
SYNTHETIC = {"counter.mp4", "fades.mp4", "delayed_start.mp4"}  # test patterns, not footage
DEFAULT_MEDIA = [Path(__file__).resolve().parents[1].parent / "shared" / "media",
                 Path("/usr/share/doc/opencv-doc/examples/data")]


def find_videos(dirs: list[Path]) -> list[Path]:
    out = []
    for d in dirs:
        if d.is_file():
            out.append(d)
        elif d.is_dir():
            out += sorted(p for p in d.rglob("*") if p.suffix.lower() in VIDEO_EXT and p.name not in SYNTHETIC)
    return out


def load_source(path: Path, size: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    from cuecast.streams.video import FileDecoder
    from cuecast.types import SourceError

    try:
        frames = [f for f in FileDecoder(path, analysis_width=size[0] * 2, audio=False) if isinstance(f, Frame)]
    except SourceError as e:
        print(f"skip {path}: {e}", file=sys.stderr)
        return [], np.zeros(0)
    imgs = [cv2.resize(f.image, size, interpolation=cv2.INTER_AREA) for f in frames]
    return imgs, np.array([f.t for f in frames])


def source_shots(imgs: list[np.ndarray], times: np.ndarray, min_s: float = 0.6) -> list[tuple[int, int]]:
    """The source's own shots (index ranges), found by the same online detector."""
    det = OnlineCutDetector(CutConfig(device="cpu"))
    cuts = []
    for i, (im, t) in enumerate(zip(imgs, times)):
        cuts += [b for b in det.process_frame(Frame(t=float(t), index=i, image=im))]
    cuts += det.flush()
    edges = [0]
    for b in cuts:  # a gradual transition is not usable footage: drop its span
        lo = b.start if b.start is not None else b.t
        hi = b.end if b.end is not None else b.t
        edges += [int(np.searchsorted(times, lo)), int(np.searchsorted(times, hi))]
    edges.append(len(times))
    shots = [(edges[i], edges[i + 1]) for i in range(0, len(edges) - 1, 2)]
    # black title cards and flat frames: a cut between two of them cannot be seen
    return [(a, b) for a, b in shots if b > a and times[b - 1] - times[a] >= min_s
            and imgs[(a + b) // 2].mean(axis=2).std() > 8]


# ---- editing rhythms: shot lengths in seconds --------------------------------------------------------

def rhythm_cuts(kind: str, seconds: float, rng: np.random.Generator) -> tuple[list[float], dict]:
    """Cut times (s) of an edit of `seconds` with the given rhythm, and what was drawn."""
    t, cuts = 0.0, []
    info: dict = {"rhythm": kind}
    if kind == "steady":
        base = float(rng.uniform(0.7, 3.5))
        jitter = float(rng.uniform(0.0, 0.04))
        info.update(base=base, jitter=jitter)
        lengths = lambda: base * (1 + jitter * rng.standard_normal())  # noqa: E731
    elif kind == "accelerating":
        state = {"len": float(rng.uniform(2.0, 4.5)), "r": float(rng.uniform(0.8, 0.95))}
        info.update(start=state["len"], ratio=state["r"])

        def lengths():
            cur = state["len"]
            nxt = cur * state["r"]
            if nxt < 0.6 or nxt > 5.0:  # phrase ends: turn round (decelerate / accelerate again)
                state["r"] = 1.0 / state["r"]
                nxt = cur * state["r"]
            state["len"] = nxt
            return cur
    elif kind == "random":
        med = float(rng.uniform(1.2, 3.0))
        info.update(median=med)
        lengths = lambda: float(np.clip(rng.lognormal(np.log(med), 0.5), 0.5, 8.0))  # noqa: E731
    elif kind == "beat":
        bpm = float(rng.uniform(80, 160))
        beat = 60.0 / bpm
        steady_n = rng.random() < 0.5
        pattern = int(rng.choice([2, 4])) if steady_n else None
        choices = [1, 2, 3, 4, 6, 8] if beat < 0.5 else [1, 2, 3, 4]
        weights = np.array([1, 4, 1, 4, 1, 2][: len(choices)], float)
        info.update(bpm=bpm, pattern=pattern)

        def lengths():
            n = pattern or int(rng.choice(choices, p=weights / weights.sum()))
            while n * beat < 0.5:
                n *= 2
            return n * beat
        t = float(rng.integers(1, 5)) * beat  # the first cut on a beat
        cuts.append(t)
    else:
        raise ValueError(kind)
    while True:
        t += max(0.5, lengths())
        if t >= seconds - 0.5:
            break
        cuts.append(t)
    return cuts, info


def beat_track(seconds: float, bpm: float, offset: float, rng: np.random.Generator) -> np.ndarray:
    """A drum-machine beat: kick on beats (accent on the bar), hats between, a quiet pad under it."""
    n = int(seconds * AUDIO_RATE)
    x = 0.02 * rng.standard_normal(n).astype(np.float32)
    tt = np.arange(n) / AUDIO_RATE
    x += 0.05 * np.sin(2 * np.pi * float(rng.uniform(150, 400)) * tt).astype(np.float32)
    beat = 60.0 / bpm
    kl = int(0.15 * AUDIO_RATE)
    kick = np.sin(2 * np.pi * 55 * np.arange(kl) / AUDIO_RATE * np.linspace(2, 1, kl)) * np.exp(-np.arange(kl) / (0.04 * AUDIO_RATE))
    hl = int(0.03 * AUDIO_RATE)
    for k, b in enumerate(np.arange(offset % beat, seconds, beat)):
        i = int(b * AUDIO_RATE)
        amp = 0.8 if k % 4 == 0 else 0.5
        x[i:i + kl] += (amp * kick[: n - i]).astype(np.float32)
        j = int((b + beat / 2) * AUDIO_RATE)
        if j < n:
            x[j:j + hl] += (0.15 * rng.standard_normal(min(hl, n - j)) * np.exp(-np.arange(min(hl, n - j)) / 100)).astype(np.float32)
    return np.clip(x, -1, 1)


# ---- one edit -------------------------------------------------------------------------------------------

def compose(sources, shots_pool, cuts: list[float], seconds: float, fps: float, rng) -> list[np.ndarray]:
    """Frames of the edit: each shot a stretch of a different source shot (ping-pong if too short)."""
    bounds = [0.0] + cuts + [seconds]
    frames, last = [], None
    n = int(round(seconds * fps))
    k = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        choice = rng.integers(len(shots_pool))
        while len(shots_pool) > 1 and choice == last:
            choice = rng.integers(len(shots_pool))
        last = choice
        si, (i0, i1) = shots_pool[choice]
        imgs, times = sources[si]
        span = times[i1 - 1] - times[i0]
        start = times[i0] + float(rng.uniform(0, max(0.0, span - (b - a))))
        while k < n and k / fps < b - 1e-9:
            u = start + (k / fps - a)
            if span > 0:  # ping-pong inside the source shot
                r = (u - times[i0]) % (2 * span)
                u = times[i0] + (r if r <= span else 2 * span - r)
            idx = i0 + int(np.clip(np.searchsorted(times[i0:i1], u), 0, i1 - i0 - 1))
            frames.append(imgs[idx])
            k += 1
    return frames


def play(frames: list[np.ndarray], audio: np.ndarray | None, fps: float) -> dict:
    """Run the detector and the context tracker as the engine would; record every tick.

    Besides the context rows it records the signals they came from (motion and the onset envelope at
    every tick, each cut with the frame at which the detector decided it), so that forecast_data.replay
    can rebuild the rows with a changed ContextTracker without running the detector again.
    """
    det = OnlineCutDetector(CutConfig(device="cpu"))
    ctx = ContextTracker()
    rows, labels, decided, next_tick, a_pos = [], [], [], None, 0
    sig = {"t": [], "motion": [], "env_count": [], "env_t_end": [], "has_audio": []}
    env_values: list[float] = []
    chunk = 2048
    for i, im in enumerate(frames):
        t = i / fps
        while audio is not None and a_pos < len(audio) and a_pos / AUDIO_RATE <= t + 0.05:
            ctx.add_audio(AudioChunk(t=a_pos / AUDIO_RATE, samples=audio[a_pos:a_pos + chunk], rate=AUDIO_RATE))
            a_pos += chunk
        frame = Frame(t=t, index=i, image=im)
        found = det.process_frame(frame)
        labels += [b.t for b in found]
        decided += [t for _ in found]
        ctx.add_frame(frame)
        ctx.add_cuts(found)
        if next_tick is None or t >= next_tick:
            next_tick = next_tick_after(t, BIN_S)
            rows.append(ctx.row(t))
            new = ctx.audio.n_values - len(env_values)
            env_values += list(ctx.audio.env)[len(ctx.audio.env) - new:] if new else []
            for k, v in (("t", t), ("motion", ctx.motion), ("env_count", ctx.audio.n_values),
                         ("env_t_end", ctx.audio.t_end), ("has_audio", float(ctx.has_audio))):
                sig[k].append(v)
    tail = det.flush()
    labels += [b.t for b in tail]
    decided += [np.inf for _ in tail]  # decided after the edit: never known while it played
    out = {"ctx": np.stack(rows), "labels": np.array(labels), "label_decided": np.array(decided),
           "env_values": np.array(env_values, np.float32)}
    return out | {f"sig_{k}": np.array(v, np.float64) for k, v in sig.items()}


def make_edit(k: int, sources, pool, args) -> dict:
    rng = np.random.default_rng(args.seed * 100003 + k)
    kind = RHYTHMS[k % len(RHYTHMS)]
    seconds = float(rng.uniform(args.seconds * 0.6, args.seconds * 1.4))
    cuts, info = rhythm_cuts(kind, seconds, rng)
    cuts = [np.ceil(c * args.fps - 1e-6) / args.fps for c in cuts]  # a cut lands on a frame
    frames = compose(sources, pool, cuts, seconds, args.fps, rng)
    audio = None
    if kind == "beat":
        audio = beat_track(seconds, info["bpm"], cuts[0] if cuts else 0.0, rng)
    elif rng.random() < 0.5:  # music that the editor ignored: the model must learn when beats matter
        info["unrelated_bpm"] = float(rng.uniform(80, 160))
        audio = beat_track(seconds, info["unrelated_bpm"], float(rng.uniform(0, 1)), rng)
    rec = play(frames, audio, args.fps)
    return rec | {"truth": np.array(cuts), "frames": frames, "audio": audio,
                  "info": info | {"seconds": seconds, "kind": kind}}


def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, fps: float) -> None:
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt, vs.options = "yuv420p", {"preset": "veryfast", "crf": "20"}
        a_s = None
        if audio is not None:
            a_s = c.add_stream("aac", rate=AUDIO_RATE)
            a_s.layout = "mono"
        for im in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if a_s is not None:
            for i in range(0, len(audio), 1024):
                af = av.AudioFrame.from_ndarray(audio[None, i:i + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = AUDIO_RATE, i
                for p in a_s.encode(af):
                    c.mux(p)
            for p in a_s.encode():
                c.mux(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for edit_NNNN.npz (and .mp4 with --write-video)")
    ap.add_argument("--media", action="append", default=[], help="a folder (or file) of footage; repeatable")
    ap.add_argument("--no-default-media", action="store_true", help="use only --media")
    ap.add_argument("--exclude", action="append", default=[], metavar="NAME",
                    help="leave out footage with this file name (repeatable): e.g. the held-out test footage")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="use only footage with these file names (repeatable): e.g. for a held-out test set")
    ap.add_argument("--n", type=int, default=240, help="number of edits")
    ap.add_argument("--seconds", type=float, default=40.0, help="mean edit length")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--size", default="128x72", help="frame size of the edits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first edit number (to add to an existing set)")
    ap.add_argument("--write-video", type=int, default=0, metavar="N", help="also write the first N edits as .mp4")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    dirs = [Path(m).expanduser() for m in args.media] + ([] if args.no_default_media else DEFAULT_MEDIA)
    videos = [v for v in find_videos(dirs) if v.name not in args.exclude and (not args.only or v.name in args.only)]
    if not videos:
        print("make_edits: no videos found; pass --media DIR", file=sys.stderr)
        return 2
    w, h = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources, pool = [], []
    for p in videos:
        imgs, times = load_source(p, (w, h))
        if len(imgs) < 10:
            continue
        shots = source_shots(imgs, times)
        print(f"source {p.name}: {len(imgs)} frames, {len(shots)} usable shots", flush=True)
        pool += [(len(sources), s) for s in shots]
        sources.append((imgs, times))
    if len(pool) < 2:
        print("make_edits: need at least two usable source shots", file=sys.stderr)
        return 2
    meta = {"videos": [str(v) for v in videos], "n_source_shots": len(pool), "fps": args.fps, "size": [w, h],
            "bin_s": BIN_S}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    t0 = time.time()
    for k in range(args.start, args.start + args.n):
        path = out / f"edit_{k:04d}.npz"
        if path.exists():
            continue  # resumable: a killed run picks up where it stopped
        e = make_edit(k, sources, pool, args)
        tmp = out / f"edit_{k:04d}.tmp.npz"
        arrays = {k: v for k, v in e.items() if k not in ("frames", "audio", "info")}
        np.savez_compressed(tmp, **arrays, info=json.dumps(e["info"]))
        tmp.rename(path)
        if k - args.start < args.write_video:
            write_video(out / f"edit_{k:04d}.mp4", e["frames"], e["audio"], args.fps)
        print(f"edit {k}: {e['info']['kind']}, {len(e['truth'])} cuts made, {len(e['labels'])} detected, "
              f"{time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
