"""Train the emotion fusion head from labelled videos, one sub-folder per class.

    python tools/train_emotion.py DATA_DIR --out models/weights/emotion_head.pt [--epochs 60]
    python tools/train_emotion.py --make-demo-set /work/shared/media /tmp/emo_demo   # a small set to try it

DATA_DIR/<class>/*.mp4|mkv|mov|avi|webm, class one of anger, disgust, fear, joy, sadness, surprise (also
angry, happy, sad, surprised). Every video runs through the estimator (picture, faces, sound, as the
engine sees them); each of its windows becomes one example labelled with the folder's class. Videos,
not windows, are split into train and validation, so windows of one video never sit on both sides.
The report compares the trained head with the fixed fusion on the validation windows. Use the result
with `emotion.fusion_weights = "PATH"` in the config.

The demo set is made from real clips by construction, not by human labels: each class is a picture
treatment that the affect literature ties to it (joy: brighter, saturated, warm; sadness: dark,
desaturated, slowed, held; fear: dark, cold, jittery fast cuts; anger: red, contrasty, fast motion;
surprise: bright with sudden cuts and flashes). It shows the training machinery end to end; a head meant
for real use needs a human-labelled set (e.g. LIRIS-ACCEDE or the user's own clips).
"""

from __future__ import annotations

import argparse
import random
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cuecast.models.emotion.config import EmotionConfig  # noqa: E402
from cuecast.models.emotion.estimator import EmotionEstimator  # noqa: E402
from cuecast.models.emotion.fusion import DIMS, FusionHead, save_head  # noqa: E402
from cuecast.streams.video import FileDecoder, SourceError  # noqa: E402
from cuecast.types import EKMAN6, Frame  # noqa: E402

ALIASES = {"angry": "anger", "happy": "joy", "happiness": "joy", "sad": "sadness", "surprised": "surprise",
           "disgusted": "disgust", "fearful": "fear", "scared": "fear"}
VIDEO_EXT = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}


# ---------------------------------------------------------------- dataset

def list_videos(data: Path) -> list[tuple[Path, int]]:
    items = []
    for d in sorted(p for p in data.iterdir() if p.is_dir()):
        name = ALIASES.get(d.name.lower(), d.name.lower())
        if name not in EKMAN6:
            sys.exit(f"train_emotion: folder {d.name!r} is not a class; use {', '.join(EKMAN6)}")
        items += [(v, EKMAN6.index(name)) for v in sorted(d.iterdir()) if v.suffix.lower() in VIDEO_EXT]
    if not items:
        sys.exit(f"train_emotion: no videos in class folders under {data}")
    return items


def video_windows(path: Path, cfg: EmotionConfig):
    """The head inputs (x, mask) and fixed-fusion probabilities of every window of one video."""
    est = EmotionEstimator(cfg)
    est.record_steps = True
    for item in FileDecoder(path, analysis_width=320, audio=cfg.audio):
        if isinstance(item, Frame):
            est.process_frame(item)
        else:
            est.process_audio(item)
    est.flush()
    return est.steps


def stack(examples):
    x = {k: torch.from_numpy(np.stack([e[0][k] for e in examples])) for k in DIMS}
    m = {k: torch.from_numpy(np.stack([e[1][k] for e in examples])) for k in DIMS}
    return x, m


# ---------------------------------------------------------------- training

def train(train_ex, val_ex, epochs: int, seed: int, device: str = "cpu"):
    torch.manual_seed(seed)
    head = FusionHead().to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-2)
    x, m = stack([e[:2] for e in train_ex])
    y = torch.tensor([e[3] for e in train_ex])
    counts = torch.bincount(y, minlength=6).float()
    weight = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), torch.zeros(6))
    for ep in range(epochs):
        head.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            # signal dropout (as EMSYNC drops condition labels): the head also learns to work without
            # faces or sound, which many inputs lack
            keep = {k: (torch.rand(len(idx), 1) > 0.25).float() for k in DIMS if k != "picture"}
            mb = {k: v[idx] * keep.get(k, 1.0) for k, v in m.items()}
            logits = head({k: v[idx] for k, v in x.items()}, mb)
            loss = F.cross_entropy(logits, y[idx], weight=weight)  # balanced: classes differ in size
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (ep + 1) % 10 == 0 or ep == epochs - 1:
            print(f"epoch {ep + 1:3d}  loss {loss.item():.3f}  train acc {accuracy(head, train_ex):.3f}  "
                  f"val acc {accuracy(head, val_ex):.3f}")
    return head.eval()


@torch.no_grad()
def accuracy(head, examples) -> float:
    if not examples:
        return float("nan")
    head.eval()
    x, m = stack([e[:2] for e in examples])
    pred = head(x, m).argmax(1).numpy()
    return float(np.mean(pred == np.array([e[3] for e in examples])))


def fixed_accuracy(examples) -> float:
    return float(np.mean([int(np.argmax(e[2])) == e[3] for e in examples])) if examples else float("nan")


# ---------------------------------------------------------------- a demo set made from real clips

def treat(img: np.ndarray, cls: str, k: int, rng) -> np.ndarray:
    f = img.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    if cls == "joy":
        f = (grey + 1.5 * (f - grey)) * 1.2 + np.array([30, 20, 0])
    elif cls == "sadness":
        f = (grey + 0.3 * (f - grey)) * 0.55 + np.array([0, 0, 8])
    elif cls == "fear":
        f = (grey + 0.6 * (f - grey)) * 0.45 + np.array([0, 5, 25])
        f = np.roll(f, int(rng.integers(-6, 7)), axis=1)  # handheld jitter
    elif cls == "anger":
        f = (f - 128) * 1.4 + 128 + np.array([60, -10, -20])
        f = np.roll(f, 9 * k, axis=1)  # fast pan
    elif cls == "surprise":
        f = (grey + 1.3 * (f - grey)) * 1.1 + 20
        if k % 13 == 0:
            f = f + 90  # flashes
    return np.clip(f, 0, 255).astype(np.uint8)


def make_demo_set(media: Path, out: Path, seconds: float = 4.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    clips = [p for p in sorted(media.iterdir()) if p.name in
             ("testvideo.mp4", "goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4", "issue-195-aspect-ratio.mp4")]
    if not clips:
        sys.exit(f"train_emotion: no known clips in {media}")
    n = 0
    for clip in clips:
        frames = [it.image for it in FileDecoder(clip, analysis_width=320, audio=False)]
        fps = 25
        length = int(seconds * fps)
        for start in range(0, len(frames) - length, length):
            seg = frames[start:start + length]
            for cls in ("joy", "sadness", "fear", "anger", "surprise"):
                if cls == "sadness":  # slowed and held: each frame three times
                    pics = [seg[i // 3] for i in range(length)]
                elif cls in ("fear", "surprise"):  # a cut every 0.6 s to another part of the clip
                    pics = [frames[(start + 97 * (i // 15) + i) % len(frames)] for i in range(length)]
                else:
                    pics = seg
                d = out / cls
                d.mkdir(parents=True, exist_ok=True)
                write_video(d / f"{clip.stem}_{start:05d}.mp4", [treat(p, cls, i, rng) for i, p in enumerate(pics)], fps)
                n += 1
    print(f"wrote {n} videos under {out}")


def write_video(path: Path, images: list[np.ndarray], fps: int) -> None:
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        s.options = {"crf": "28", "preset": "veryfast"}
        for img in images:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: h - h % 2, : w - w % 2]), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="folder with one sub-folder of videos per class")
    ap.add_argument("--out", default=str(ROOT / "models" / "weights" / "emotion_head.pt"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--val-frac", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-faces", action="store_true")
    ap.add_argument("--make-demo-set", nargs=2, metavar=("MEDIA_DIR", "OUT_DIR"),
                    help="write a small labelled demo set made from the real clips, then stop")
    args = ap.parse_args()
    if args.make_demo_set:
        make_demo_set(Path(args.make_demo_set[0]), Path(args.make_demo_set[1]))
        return 0
    if not args.data:
        ap.error("DATA_DIR is required")
    videos = list_videos(Path(args.data))
    random.Random(args.seed).shuffle(videos)
    n_val = max(1, int(len(videos) * args.val_frac))
    cfg = EmotionConfig(faces=not args.no_faces, smoothing_s=0.0)
    sets: dict[str, list] = {"train": [], "val": []}
    for i, (path, label) in enumerate(videos):
        try:
            wins = video_windows(path, cfg)
        except SourceError as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        # the first windows are short (they start at 0); train on windows at least half full
        wins = [(x, m, p, label) for x, m, p in wins if m["picture"].mean() >= 0.5]
        sets["val" if i < n_val else "train"] += wins
    print(f"{len(videos)} videos: {len(sets['train'])} training windows, {len(sets['val'])} validation windows")
    head = train(sets["train"], sets["val"], args.epochs, args.seed)
    print(f"validation accuracy: trained head {accuracy(head, sets['val']):.3f}, "
          f"fixed fusion {fixed_accuracy(sets['val']):.3f}, chance {1 / len({e[3] for e in sets['val']} or {0}):.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seen = [k for k in DIMS if any(e[1][k].any() for e in sets["train"])]
    save_head(head, out, seen)
    print(f"signals in the training data: {', '.join(seen)}")
    print(f"wrote {out}; use it with emotion.fusion_weights = \"{out}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
