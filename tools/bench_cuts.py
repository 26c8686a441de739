"""Benchmark of the online cut detector on the real clips, side by side with PySceneDetect.

    python tools/bench_cuts.py ../shared/media

Accuracy: every clip of MEDIA/cuts.json through cuecast's OnlineCutDetector (online, frame by frame, via
FileDecoder) and through scenedetect's AdaptiveDetector (offline, its own `detect()`), scored the same way:
a hard cut counts when within one frame of a hand-checked hard cut; a boundary inside a gradual
transition (+-0.25 s) finds that transition (and is not a false hard cut); anything else is a false
boundary. Speed: the same decoded 1280x720 frames through OnlineCutDetector.process_frame and through
scenedetect's ContentDetector.process_frame (at full size, and downscaled the way its SceneManager
does by default, the downscale counted), frames per second and ratios; frames are decoded before any
timing; cuecast and the downscaled ContentDetector take each frame in turn, and each detector keeps
its fastest of five passes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

GRADUAL_SLACK = 0.25


def score(found: list[tuple[float, str]], truth: dict, fps: float) -> dict:
    """found: (time, kind). Greedy one-to-one matching of hard cuts at +-1 frame."""
    tol = 1.0 / fps + 1e-3
    hard = list(truth.get("hard", []))
    gradual = [tuple(g) for g in truth.get("gradual", [])]
    tp = fp = 0
    grad_hit = set()
    for t, kind in sorted(found):
        near = [h for h in hard if abs(h - t) <= tol]
        if near:
            hard.remove(min(near, key=lambda h: abs(h - t)))
            tp += 1
            continue
        inside = [i for i, (s, e) in enumerate(gradual) if s - GRADUAL_SLACK <= t <= e + GRADUAL_SLACK]
        if inside:
            grad_hit.update(inside)
            continue
        fp += 1
    return {"hard_tp": tp, "hard_fp": fp, "hard_fn": len(hard), "gradual_found": len(grad_hit),
            "gradual_total": len(gradual), "false_boundaries": fp}


def ours(path: Path) -> tuple[list[tuple[float, str]], float, int]:
    import torch

    from cuecast.models.cuts.config import CutConfig
    from cuecast.models.cuts.detector import OnlineCutDetector
    from cuecast.streams.video import FileDecoder
    from cuecast.types import Frame

    torch.set_num_threads(1)
    src = FileDecoder(path, analysis_width=320, audio=False)
    det = OnlineCutDetector(CutConfig())
    out, n = [], 0
    for item in src:
        if isinstance(item, Frame):
            out += det.process_frame(item)
            n += 1
    out += det.flush()
    return [(b.t, b.kind) for b in out], src.info.fps, n


def adaptive(path: Path) -> list[tuple[float, str]]:
    from scenedetect import AdaptiveDetector, detect

    scenes = detect(str(path), AdaptiveDetector())
    return [(s[0].seconds, "cut") for s in scenes[1:]]


def accuracy_rows(media: Path) -> list[dict]:
    clips = json.loads((media / "cuts.json").read_text())["clips"]
    rows = []
    for name, truth in clips.items():
        found, fps, _ = ours(media / name)
        rows.append({"section": "accuracy", "clip": name, "detector": "cuecast online", **score(found, truth, fps)})
        rows.append({"section": "accuracy", "clip": name, "detector": "scenedetect Adaptive (offline)",
                     **score(adaptive(media / name), truth, fps)})
    for det in ("cuecast online", "scenedetect Adaptive (offline)"):
        sel = [r for r in rows if r["detector"] == det]
        tot = {k: sum(r[k] for r in sel) for k in ("hard_tp", "hard_fp", "hard_fn", "gradual_found",
                                                   "gradual_total", "false_boundaries")}
        tot["precision"] = tot["hard_tp"] / max(1, tot["hard_tp"] + tot["hard_fp"])
        tot["recall"] = tot["hard_tp"] / max(1, tot["hard_tp"] + tot["hard_fn"])
        tot["gradual_recall"] = tot["gradual_found"] / max(1, tot["gradual_total"])
        tot["false_on_counter_fades"] = sum(r["false_boundaries"] for r in sel if r["clip"] in ("counter.mp4", "fades.mp4"))
        rows.append({"section": "total", "clip": "all", "detector": det, **tot})
    return rows


def speed_rows(media: Path, n_frames: int = 300, repeats: int = 5) -> list[dict]:
    """The same decoded frames through each detector; decoding is not timed.

    The frames are decoded first and held in memory, so no decoder thread runs while a detector is
    timed; `repeats` passes with fresh detectors, and each detector keeps its fastest pass.
    """
    import cv2
    import torch
    from scenedetect import ContentDetector, FrameTimecode
    from scenedetect.scene_manager import compute_downscale_factor

    from cuecast.models.cuts.config import CutConfig
    from cuecast.models.cuts.detector import OnlineCutDetector
    from cuecast.streams.video import FileDecoder
    from cuecast.types import Frame

    torch.set_num_threads(1)
    src = FileDecoder(media / "testvideo.mp4", analysis_width=1280, audio=False)
    frames = []
    for item in src:
        if isinstance(item, Frame):
            frames.append(item)
            if len(frames) >= n_frames:
                break
    fps_in = src.info.fps
    bgr = [np.ascontiguousarray(f.image[:, :, ::-1]) for f in frames]  # scenedetect takes BGR
    tcs = [FrameTimecode(f.index, fps_in) for f in frames]
    h, w = bgr[0].shape[:2]
    k = compute_downscale_factor(w)
    small = (round(w / k), round(h / k))

    def make():  # fresh detectors, and how each takes frame i
        ours_det, full, down = OnlineCutDetector(CutConfig()), ContentDetector(), ContentDetector()
        return {
            "cuecast online (torch, 1 thread)": lambda i: ours_det.process_frame(frames[i]),
            # what SceneManager does by default: the resize is part of its time
            "scenedetect Content, SceneManager downscale":
                lambda i: down.process_frame(tcs[i], cv2.resize(bgr[i], small, interpolation=cv2.INTER_LINEAR)),
        }, {"scenedetect Content, full frame": lambda i: full.process_frame(tcs[i], bgr[i])}

    best: dict[str, float] = {}
    for _ in range(repeats):
        compared, reference = make()
        spent = {name: 0.0 for name in [*compared, *reference]}
        # the two compared take each frame in turn, so a burst of other work on a shared machine slows
        # both alike; the full-frame reference runs its own pass (its 8 MB per frame of memory traffic
        # would flush the others' caches between their frames)
        for group in (compared, reference):
            for i in range(len(frames)):
                for name, fn in group.items():
                    t = time.perf_counter()
                    fn(i)
                    spent[name] += time.perf_counter() - t
        best = {name: min(best.get(name, float("inf")), sec) for name, sec in spent.items()}
    n = len(frames)
    ours = n / best["cuecast online (torch, 1 thread)"]
    return [{"section": "speed", "detector": name, "frames": n, "size": f"{w}x{h}", "fps": n / sec,
             "ratio": ours / (n / sec), "repeats": repeats} for name, sec in best.items()]


def run(media_dir: str) -> list[dict]:
    media = Path(media_dir)
    return accuracy_rows(media) + speed_rows(media)


def markdown(rows: list[dict]) -> str:
    out = ["### Cut detection (tools/bench_cuts.py)", "",
           "| clip | detector | hard TP | hard FP | hard FN | gradual found | false boundaries |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["section"] == "accuracy":
            out.append(f"| {r['clip']} | {r['detector']} | {r['hard_tp']} | {r['hard_fp']} | {r['hard_fn']} | "
                       f"{r['gradual_found']}/{r['gradual_total']} | {r['false_boundaries']} |")
    out += ["", "| detector | hard precision (+-1 frame) | hard recall | gradual found | false boundaries on counter/fades |",
            "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["section"] == "total":
            out.append(f"| {r['detector']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                       f"{r['gradual_found']}/{r['gradual_total']} ({r['gradual_recall']:.0%}) | {r['false_on_counter_fades']} |")
    out += ["", "Speed: the same decoded frames, held in memory; cuecast and Content with SceneManager's downscale "
            "take each frame in turn, the full-frame Content runs its own pass; each detector's fastest of five "
            "passes (fresh detectors each pass). The SceneManager row includes its "
            "downscale (cv2 INTER_LINEAR to width 256 for 1280x720), cuecast's row its own downscale.", "",
            "| speed, same decoded frames | size | frames | frames/s | cuecast ÷ this |", "|---|---|---:|---:|---:|"]
    for r in rows:
        if r["section"] == "speed":
            out.append(f"| {r['detector']} | {r['size']} | {r['frames']} | {r['fps']:.0f} | {r['ratio']:.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(run(sys.argv[1] if len(sys.argv) > 1 else "../shared/media")))
