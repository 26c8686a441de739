"""Directional checks of the emotion estimator on real footage, and of the face path on real photos.

    python tools/eval_emotion.py /work/shared/media [--photos DIR ...] [--json out.json]

For every real clip it makes variants of the same picture stream with numpy (same timestamps unless
said): brighter + more saturated, darker + desaturated, sped up 2x (every other frame, time halved), cut
faster (0.8 s pieces from all over the clip, in a scrambled order), one still frame held; and, where
the clip has sound, the same clip with its sound 26 dB quieter. Each variant runs through the estimator
with the default config; the checks compare the mean valence/arousal of the windows:
    V(bright) > V(original) > V(dark); A(sped up) > A(original); A(cut faster) > A(original);
    A(still) < A(original); A(quiet sound) < A(original sound)
The photo part runs the face path on real photographs (by default Debian opencv-doc's documentation
pictures when installed, and scikit-image's NASA astronaut when given with --photos).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cuecast.models.emotion.config import EmotionConfig  # noqa: E402
from cuecast.models.emotion.estimator import EmotionEstimator  # noqa: E402
from cuecast.models.emotion.faces import FaceExpressions, faces_to_ekman  # noqa: E402
from cuecast.models.emotion.fer_net import FER_CLASSES  # noqa: E402
from cuecast.streams.video import FileDecoder  # noqa: E402
from cuecast.types import EKMAN6, AudioChunk, Frame  # noqa: E402

CLIPS = ("testvideo.mp4", "goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4", "issue-195-aspect-ratio.mp4")
# smiling people in opencv-doc's documentation pictures (Debian opencv-doc, /usr/share/doc/opencv-doc)
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/opencv4/html")
SMILING = ("227943776_1.jpg", "face_swapped.jpg")
PEOPLE = ("facereg.jpg", "230501201_1.jpg", "ab.jpg", "julia_facedetect_sample.jpg")


def decode(path: Path):
    frames, audio = [], []
    for item in FileDecoder(path, analysis_width=320, audio=True):
        (frames if isinstance(item, Frame) else audio).append(item)
    return frames, audio


def colour(img: np.ndarray, sat: float, gain: float, lift: float) -> np.ndarray:
    f = img.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    return np.clip((grey + sat * (f - grey)) * gain + lift, 0, 255).astype(np.uint8)


def variants(frames: list[Frame]) -> dict[str, list[Frame]]:
    ts = [f.t for f in frames]
    mid = frames[len(frames) // 2].image
    dur = ts[-1] - ts[0]
    out = {
        "original": frames,
        "bright_saturated": [Frame(f.t, f.index, colour(f.image, 1.6, 1.25, 25)) for f in frames],
        "dark_desaturated": [Frame(f.t, f.index, colour(f.image, 0.35, 0.55, 0)) for f in frames],
        "sped_up_2x": [Frame(f.t / 2, i, f.image) for i, f in enumerate(frames[::2])],
        "still": [Frame(f.t, f.index, mid) for f in frames],
    }
    # cut faster: every 0.8 s jump to a far-away part of the clip (golden-ratio stride over the duration)
    cut = []
    for i, f in enumerate(frames):
        piece = int(f.t // 0.8)
        src_t = (piece * 0.618 * dur + (f.t % 0.8)) % max(dur, 1e-3)
        j = min(int(np.searchsorted(ts, src_t)), len(frames) - 1)
        cut.append(Frame(f.t, i, frames[j].image))
    out["cut_faster"] = cut
    return out


def run(frames: list[Frame], audio: list[AudioChunk] | None, cfg: EmotionConfig) -> tuple[float, float, list]:
    est = EmotionEstimator(cfg)
    windows, ai = [], 0
    audio = audio or []
    for f in frames:
        while ai < len(audio) and audio[ai].t <= f.t:
            est.process_audio(audio[ai])
            ai += 1
        windows += est.process_frame(f)
    windows += est.flush()
    return float(np.mean([w.valence for w in windows])), float(np.mean([w.arousal for w in windows])), windows


def clip_checks(media: Path, clips=CLIPS) -> list[dict]:
    rows = []
    for name in clips:
        path = media / name
        if not path.is_file():
            continue
        frames, audio = decode(path)
        runs = {k: run(v, None, EmotionConfig(audio=False)) for k, v in variants(frames).items()}
        res = {k: r[:2] for k, r in runs.items()}
        v0, a0 = res["original"]
        row = {"clip": name, **{f"{k}_va": [round(x, 3) for x in va] for k, va in res.items()},
               "brighter_higher_valence": res["bright_saturated"][0] > v0,
               "darker_lower_valence": res["dark_desaturated"][0] < v0,
               "faster_higher_arousal": res["sped_up_2x"][1] > a0,
               "more_cuts_higher_arousal": res["cut_faster"][1] > a0,
               "still_lower_arousal": res["still"][1] < a0,
               **stability(runs["original"][2]), **response(frames)}
        if audio:
            quiet = [AudioChunk(c.t, c.samples * 0.05, c.rate) for c in audio]
            _, a_loud, _ = run(frames, audio, EmotionConfig())
            _, a_quiet, _ = run(frames, quiet, EmotionConfig())
            row["sound_va"] = [round(a_loud, 3), round(a_quiet, 3)]
            row["louder_higher_arousal"] = a_loud > a_quiet
        rows.append(row)
    return rows


def stability(windows) -> dict:
    """How much the output moves from window to window: dominant-emotion flips per minute, mean |dV|, |dA|."""
    tops = [int(np.argmax(w.probs)) for w in windows]
    minutes = max((windows[-1].end - windows[0].end) / 60.0, 1e-6)
    dv = np.abs(np.diff([w.valence for w in windows]))
    da = np.abs(np.diff([w.arousal for w in windows]))
    return {"flips_per_min": round(sum(a != b for a, b in zip(tops, tops[1:])) / minutes, 2),
            "mean_abs_dv": round(float(dv.mean()), 4), "mean_abs_da": round(float(da.mean()), 4)}


def response(frames: list[Frame], hold: float = 8.0, fps: float = 25.0) -> dict:
    """A real change: one frame of the clip (its most detailed) darkened for `hold` s, then brightened for
    `hold` s (one picture, so nothing but the change moves; faces off, they would hold valence). Seconds
    after the switch until the smoothed valence has covered 63% and 90% of its step."""
    mid = max(frames[:: max(1, len(frames) // 50)], key=lambda f: float(f.image.std())).image  # not a black card
    dark, bright = colour(mid, 0.35, 0.55, 0), colour(mid, 1.6, 1.25, 25)
    n = int(2 * hold * fps)
    seq = [Frame(i / fps, i, dark if i / fps < hold else bright) for i in range(n)]
    _, _, ws = run(seq, None, EmotionConfig(audio=False, faces=False))
    v = np.array([w.valence for w in ws])
    ends = np.array([w.end for w in ws])
    before, after = v[(ends <= hold)][-1], v[-1]
    out = {"step_v": round(float(after - before), 3)}
    for frac in (0.63, 0.9):
        reached = ends[(ends > hold) & ((v - before) >= frac * (after - before))]
        out[f"t{int(frac * 100)}_s"] = round(float(reached[0] - hold), 2) if reached.size else None
    return out


def photo_checks(paths: list[Path]) -> list[dict]:
    fe = FaceExpressions("cpu")
    rows = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is None:
            continue
        h, w = img.shape[:2]
        if w > 320:  # the analysis size the engine uses
            img = cv2.resize(img, (320, int(round(h * 320 / w))), interpolation=cv2.INTER_AREA)
        faces = fe(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        ek = faces_to_ekman(faces)
        rows.append({"photo": p.name, "smiling": p.name in SMILING or "astronaut" in p.name,
                     "faces": len(faces),
                     "expressions": [FER_CLASSES[int(np.argmax(f.probs7))] for f in faces],
                     "ekman_top": EKMAN6[int(np.argmax(ek[0]))] if ek else None})
    return rows


def markdown(clips: list[dict], photos: list[dict]) -> str:
    checks = ["brighter_higher_valence", "darker_lower_valence", "faster_higher_arousal",
              "more_cuts_higher_arousal", "still_lower_arousal", "louder_higher_arousal"]
    lines = ["| clip | V orig | V bright | V dark | A orig | A 2x | A cuts | A still | A sound/quiet | checks passed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in clips:
        ok = [r[c] for c in checks if c in r]
        snd = f"{r['sound_va'][0]:+.2f}/{r['sound_va'][1]:+.2f}" if "sound_va" in r else "-"
        lines.append(f"| {r['clip']} | {r['original_va'][0]:+.2f} | {r['bright_saturated_va'][0]:+.2f} | "
                     f"{r['dark_desaturated_va'][0]:+.2f} | {r['original_va'][1]:+.2f} | {r['sped_up_2x_va'][1]:+.2f} | "
                     f"{r['cut_faster_va'][1]:+.2f} | {r['still_va'][1]:+.2f} | {snd} | {sum(ok)}/{len(ok)} |")
    lines += ["", "Stability (original clip) and response to a real change (one frame 8 s darkened, then brightened):", "",
              "| clip | dominant flips/min | mean abs dV | mean abs dA | step in V | 63% after | 90% after |",
              "|---|---|---|---|---|---|---|"]
    for r in clips:
        lines.append(f"| {r['clip']} | {r['flips_per_min']} | {r['mean_abs_dv']:.3f} | {r['mean_abs_da']:.3f} | "
                     f"{r['step_v']:+.2f} | {r['t63_s']} s | {r['t90_s']} s |")
    if photos:
        lines += ["", "| photo | smiling | faces found | expressions | Ekman-6 top |", "|---|---|---|---|---|"]
        for r in photos:
            lines.append(f"| {r['photo']} | {'yes' if r['smiling'] else '-'} | {r['faces']} | "
                         f"{', '.join(r['expressions'])} | {r['ekman_top']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", help="folder with the real clips (e.g. /work/shared/media)")
    ap.add_argument("--photos", nargs="*", default=None, help="photos of people (default: opencv-doc's)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    clips = clip_checks(Path(args.media))
    photos_paths = [Path(p) for p in args.photos] if args.photos is not None else \
        [OPENCV_DOC / n for n in SMILING + PEOPLE if (OPENCV_DOC / n).is_file()]
    photos = photo_checks(photos_paths)
    print(markdown(clips, photos))
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": clips, "photos": photos}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
