"""Evaluate the emotion estimator on a folder of clips: how each clip reads, and whether it moves right.

    python tools/eval_emotion.py /work/shared/media --held-out [--jobs 2] [--margin 0.2] [--photos FILE ...] [--json out.json]
    python tools/eval_emotion.py --passage vtest.avi --passage-pool Megamind.avi tree.avi vtest.avi   # (opencv-doc's)

1. Every clip as it is (default config: picture, faces, sound): mean valence and arousal of its windows,
   the mean neutral share, the top class (the largest of the six emotions' shares and neutral) and the top
   Ekman class; then the median clip valence and how often each class is top (for footage that was not
   used in tools/calibrate_emotion.py: median within +-0.25, no Ekman class top on more than 40%).
   --held-out adds tools/packaged_clips.py's held-out clips (Debian packages that gave no calibration clip).
2. Directional checks on variants of the same picture stream, made with numpy (same timestamps unless
   said): brighter + more saturated, darker + desaturated, sped up 2x (every other frame, time halved), cut
   faster (0.8 s pieces from all over the clip, in a scrambled order), one still frame held; and, where
   the clip has sound, the same clip with its sound 26 dB quieter. Each check passes with a margin:
       V(bright) - V(original), V(original) - V(dark), A(2x) - A(original), A(cut faster) - A(original),
       A(original) - A(still), A(sound) - A(quiet sound)   all >= --margin
   A clip longer than --max-seconds (default 60) is read whole for step 1 and checked on its middle minute.
   A check whose clip or variant is shorter than one window (window_s) is printed "too short to measure" and
   counted apart (see `measurable` and the model card). So is a check whose treatment moved the picture signals
   it is meant to move (INPUTS: brightness; motion or cut rate) by less than NO_EFFECT spreads of ordinary
   footage, e.g. doubling the speed of a picture that does not move, or the sound's loudness by less than
   NO_EFFECT_DB (a silent track made quieter): printed "no effect" with that input change.
   Two ways, because the per-stream adaptation (emotion.adapt_s) is about one stream: "between clips", each
   variant its own stream on the calibrated path (adaptation off), absolute differences; and "in a stream",
   the default config (adaptation on) on one stream that plays the clip and then the variant (or the
   variant first, for the lower side), each part's windows after SETTLE_S compared.
3. Faces on real photos: a smiling face must read as joy, a frowning one as negative (valence < 0).
4. --passage CLIP: an ordinary clip with one strongly coloured passage made from real frames (12 s of
   CLIP as it is, 10 s darkened and cold with a cut every 0.5 s between shots of the --passage-pool clips,
   12 s of CLIP as it is again), rendered with the default generator (--generator to choose) with five seeds;
   from the rendered notes, per section: key score (major-ness, -1..1) and notes per second. The passage must
   read lower in mode and higher in density than both calm sections, by the medians over the five renders.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from cuecast.models.cuts.config import CutConfig  # noqa: E402
from cuecast.models.cuts.detector import OnlineCutDetector  # noqa: E402
from cuecast.models.emotion.audio import AudioFeatures  # noqa: E402
from cuecast.models.emotion.config import EmotionConfig  # noqa: E402
from cuecast.models.emotion.estimator import EmotionEstimator, analyse  # noqa: E402
from cuecast.models.emotion.faces import FaceExpressions, faces_to_ekman  # noqa: E402
from cuecast.models.emotion.fer_net import FER_CLASSES  # noqa: E402
from cuecast.models.emotion.va import top_class, va_from_probs  # noqa: E402
from cuecast.streams.video import FileDecoder  # noqa: E402
from cuecast.types import SourceError  # noqa: E402
from cuecast.types import EKMAN6, AudioChunk, Frame  # noqa: E402

VIDEO_EXT = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".ogv"}
# people in opencv-doc's documentation pictures (Debian opencv-doc, /usr/share/doc/opencv-doc)
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/opencv4/html")
SMILING = ("227943776_1.jpg", "face_swapped.jpg")
FROWNING: tuple[str, ...] = ()
PEOPLE = ("facereg.jpg", "230501201_1.jpg", "ab.jpg", "julia_facedetect_sample.jpg")
CHECKS = {  # name: (variant, other, axis): variant minus other on that axis must reach the margin
    "brighter_higher_valence": ("bright_saturated", "original", 0),
    "darker_lower_valence": ("original", "dark_desaturated", 0),
    "faster_higher_arousal": ("sped_up_2x", "original", 1),
    "more_cuts_higher_arousal": ("cut_faster", "original", 1),
    "still_lower_arousal": ("original", "still", 1),
}
# the picture signals each check's treatment is meant to move (an arousal treatment may act through either)
INPUTS = {"brighter_higher_valence": ("brightness",), "darker_lower_valence": ("brightness",),
          "faster_higher_arousal": ("motion", "cut_rate"), "more_cuts_higher_arousal": ("motion", "cut_rate"),
          "still_lower_arousal": ("motion", "cut_rate")}
# A treatment that moves its input signals by less than this (in spreads of ordinary footage) did not change the
# picture measurably: for motion 0.1 spreads is ~8% (0.076 on the log scale), under the ~5-10% Weber fraction of
# human speed discrimination (McKee 1981), so e.g. doubling the speed of a picture that does not move; for the
# cut rate it is one cut in 40 s. Such a check is printed "no effect" with the input change and counted apart.
NO_EFFECT = 0.1
# The sound check's treatment (26 dB quieter) is measured as the change of the sound's loudness as the estimator
# reads it (audio.AudioFeatures, energy mean in dBFS, floored at digital silence); under 1 dB, about the just
# noticeable difference of loudness, it did not change the sound (a silent track made quieter is the same silence).
NO_EFFECT_DB = 1.0
NOEFF = "no effect"
SETTLE_S = 2.0  # in-stream checks: windows less than this after the switch still hold the part before
SHORT = "too short"  # a check whose clip or variant has no full window (see span and the model card)
MAX_S = 60.0  # a longer clip's checks run on its middle minute (read_clip); its reading covers the whole clip


def decode(source: Path | FileDecoder):
    """(frames, sound chunks) of a clip, or of a decoder already opened on it."""
    frames, audio = [], []
    for item in source if isinstance(source, FileDecoder) else FileDecoder(source, analysis_width=320, audio=True):
        (frames if isinstance(item, Frame) else audio).append(item)
    return frames, audio


def read_clip(path: Path, max_s: float) -> tuple[list[Frame], list[AudioChunk], list | None, float]:
    """(frames, sound, windows, excerpt start) of a clip. A clip longer than max_s is read once as a stream: the whole
    clip's windows (default config) on the way, and only its middle max_s kept for the checks, re-timed from 0 (its
    frames at the analysis size are ~170 kB each: ten minutes and their variants would need tens of GB). The middle,
    not the start, so that titles and credits do not stand for the clip. Shorter clips: windows None (read later from
    the frames, as before) and start 0."""
    source = FileDecoder(path, analysis_width=320, audio=True)
    if not 0 < max_s < source.info.duration:
        frames, audio = decode(source)
        return frames, audio, None, 0.0
    start = (source.info.duration - max_s) / 2
    frames, audio = [], []

    def keep(items):
        for item in items:
            if start <= item.t < start + max_s:
                if isinstance(item, Frame):
                    frames.append(Frame(item.t - start, len(frames), item.image))
                else:
                    audio.append(AudioChunk(item.t - start, item.samples, item.rate))
            yield item

    windows = analyse(EmotionEstimator(EmotionConfig()), keep(source), OnlineCutDetector(CutConfig()))
    return frames, audio, windows, start


def colour(img: np.ndarray, sat: float, gain: float, lift: float, cold: float = 0.0) -> np.ndarray:
    f = img.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    return np.clip((grey + sat * (f - grey)) * gain + lift + np.array([-cold, 0, cold], np.float32), 0, 255).astype(np.uint8)


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


def span(frames: list[Frame]) -> float:
    """Media time a frame sequence covers: first to last frame plus one frame interval."""
    if len(frames) < 2:
        return 0.0
    return frames[-1].t - frames[0].t + (frames[-1].t - frames[0].t) / (len(frames) - 1)


def measurable(*parts: list[Frame], window_s: float = EmotionConfig.window_s) -> bool:
    """A directional check compares full windows: a part shorter than one window is read only from the
    estimator's start-up windows (they start at 0 and cover a fraction of window_s, the smoothing starts on
    the first of them, the cut rate is counted over window_s), so its difference is not the treatment's."""
    return all(span(p) >= window_s - 1e-6 for p in parts)


def run(frames: list[Frame], audio: list[AudioChunk] | None, cfg: EmotionConfig) -> tuple[float, float, list]:
    windows = drive(EmotionEstimator(cfg), frames, audio)
    return float(np.mean([w.valence for w in windows])), float(np.mean([w.arousal for w in windows])), windows


def run_inputs(frames: list[Frame], cfg: EmotionConfig) -> tuple[tuple[float, float], dict[str, float], list]:
    """(mean V, mean A) of a picture stream, its windows, and the mean standardised input signals of its full windows (no soft
    limit: how far the treatment moved the picture itself, in spreads of ordinary footage)."""
    est = EmotionEstimator(cfg)
    est.record_signals = True
    windows = drive(est, frames)
    full = [s for s in est.signals if s["end"] - s["start"] >= cfg.window_s - 1e-6] or est.signals
    cal = est.cal
    def standard(k: str, s: dict) -> float:  # motion: the reading picture_va uses (its two measures blended)
        return cal.motion_standard(s["motion"], s["motion_lag"]) if k == "motion" else cal.standardise(k, s[k])
    z = {k: float(np.mean([standard(k, s) for s in full])) if full else float("nan")
         for k in {k for ks in INPUTS.values() for k in ks}}
    return (float(np.mean([w.valence for w in windows])), float(np.mean([w.arousal for w in windows]))), z, windows


def drive(est: EmotionEstimator, frames: list[Frame], audio: list[AudioChunk] | None = None) -> list:
    """The estimator as the engine drives it (estimator.analyse): the engine's cut detector reports its boundaries."""
    return analyse(est, in_media_order(frames, audio or []), OnlineCutDetector(CutConfig()))


def in_media_order(frames: list[Frame], audio: list[AudioChunk]) -> list[Frame | AudioChunk]:
    """Frames and sound chunks as a decoder yields them: each chunk before the first frame after it."""
    return sorted([*audio, *frames], key=lambda item: (item.t, isinstance(item, Frame)))


def reading(windows) -> dict:
    """How a clip reads as a whole: mean valence/arousal, neutral share, top class and top Ekman class."""
    probs = np.mean([w.probs for w in windows], axis=0)
    neutral = float(np.mean([w.neutral for w in windows]))
    return {"valence": round(float(np.mean([w.valence for w in windows])), 3),
            "arousal": round(float(np.mean([w.arousal for w in windows])), 3),
            "neutral": round(neutral, 3), "top": top_class(probs, neutral),
            "top_ekman": EKMAN6[int(np.argmax(probs))]}


def clip_rows(paths: list[Path], jobs: int = 1, max_s: float = MAX_S) -> list[dict]:
    """One row per decodable clip, in the order given; `jobs` > 1 evaluates clips in that many processes."""
    if jobs > 1:
        from multiprocessing import Pool
        with Pool(jobs) as pool:
            rows = pool.starmap(clip_row, [(p, max_s) for p in paths], chunksize=1)
    else:
        rows = [clip_row(p, max_s) for p in paths]
    return [r for r in rows if r is not None]


def clip_row(path: Path, max_s: float = MAX_S) -> dict | None:
    try:
        frames, audio, windows, start = read_clip(path, max_s)
    except SourceError as e:
        print(f"skipping {path.name}: {e}", file=sys.stderr)
        return None
    if len(frames) < 10:
        return None
    excerpt = f" (checks on {max_s:g} s from {start:.1f} s)" if windows is not None else ""
    print(f"{path.name}: {len(frames)} frames{excerpt}", file=sys.stderr)
    windows = windows if windows is not None else run(frames, audio, EmotionConfig())[2]
    row = {"clip": path.name, **reading(windows)}
    if excerpt:
        row["checks_from_s"], row["checks_s"] = round(start, 2), max_s
    vs = variants(frames)
    runs = {k: run_inputs(v, EmotionConfig(audio=False, adapt_s=0.0)) for k, v in vs.items()}
    res = {k: r[0] for k, r in runs.items()}
    row.update({f"{k}_va": [round(x, 3) for x in va] for k, va in res.items()})
    for name, (a, b, axis) in CHECKS.items():
        change = max(runs[a][1][k] - runs[b][1][k] for k in INPUTS[name])  # in the treatment's direction
        row[f"{name}_input"] = round(change, 3)
        row[name] = round(res[a][axis] - res[b][axis], 3) if measurable(vs[a], vs[b]) else SHORT
        row[f"{name}_in_stream"] = round(in_stream(vs[b], vs[a], axis), 3)
        if measurable(vs[a], vs[b]) and change < NO_EFFECT:  # the same treatment, so the same verdict in one stream
            row[f"{name}_no_effect"] = True
    if audio and not measurable(frames):
        row["louder_higher_arousal"] = SHORT
    elif audio:
        quiet = [AudioChunk(c.t, c.samples * 0.05, c.rate) for c in audio]
        _, a_loud, _ = run(frames, audio, EmotionConfig(faces=False))
        _, a_quiet, _ = run(frames, quiet, EmotionConfig(faces=False))
        row["sound_va"] = [round(a_loud, 3), round(a_quiet, 3)]
        row["louder_higher_arousal"] = round(a_loud - a_quiet, 3)
        row["louder_higher_arousal_input"] = round(loudness_db(audio) - loudness_db(quiet), 2)  # in dB
        if row["louder_higher_arousal_input"] < NO_EFFECT_DB:
            row["louder_higher_arousal_no_effect"] = True
    row.update(stability(runs["original"][2]))
    row.update(response(frames))
    return row


def loudness_db(audio: list[AudioChunk]) -> float:
    """The whole track's loudness as the estimator measures a window's (dBFS; -100 for digital silence)."""
    feats = AudioFeatures(keep_s=float("inf"))
    for c in audio:
        feats.add(c.t, c.samples, c.rate)
    got = feats.window(-np.inf, np.inf)
    return got[0] if got is not None else -100.0


def in_stream(first: list[Frame], then: list[Frame], axis: int) -> float:
    """One stream (default config: adaptation on, faces on, no sound) that plays `first` and then `then`:
    the mean of `then`'s windows minus `first`'s on that axis, each part after SETTLE_S."""
    gap = (first[-1].t - first[0].t) / max(len(first) - 1, 1) or 0.04
    t1 = first[-1].t + gap - then[0].t
    seq = first + [Frame(f.t + t1, len(first) + i, f.image) for i, f in enumerate(then)]
    windows = drive(EmotionEstimator(EmotionConfig(audio=False)), seq)
    switch = first[-1].t + gap

    def part(lo, hi):
        got = [w.valence if axis == 0 else w.arousal for w in windows if lo <= w.start and w.end <= hi]
        return float(np.mean(got)) if got else float("nan")
    return part(switch + SETTLE_S, np.inf) - part(first[0].t + SETTLE_S, switch)


def summary(rows: list[dict], margin: float) -> dict:
    tops = [r["top"] for r in rows]
    ekman_tops = [t for t in tops if t in EKMAN6]
    # sorted: a tie names the same class on every run (a set's order follows the per-process string hash)
    most = max(sorted(set(ekman_tops)), key=ekman_tops.count) if ekman_tops else None
    named = [(r["clip"], k, r[k]) for r in rows for k in (*CHECKS, "louder_higher_arousal") if k in r]
    no_effect = [(r["clip"], k, r[f"{k}_input"]) for r in rows for k in (*CHECKS, "louder_higher_arousal") if r.get(f"{k}_no_effect")]
    apart = {c[:2] for c in no_effect}
    checks = [c for c in named if c[2] != SHORT and c[:2] not in apart]
    stream = [(r["clip"], k, r[f"{k}_in_stream"]) for r in rows for k in CHECKS
              if np.isfinite(r.get(f"{k}_in_stream", np.nan)) and (r["clip"], k) not in apart]
    stream_apart = sum(bool(np.isfinite(r.get(f"{k}_in_stream", np.nan))) for r in rows for k in CHECKS if (r["clip"], k) in apart)
    ekman = [r["top_ekman"] for r in rows]
    return {"clips": len(rows), "median_valence": round(float(np.median([r["valence"] for r in rows])), 3),
            "median_arousal": round(float(np.median([r["arousal"] for r in rows])), 3),
            "mean_neutral": round(float(np.mean([r["neutral"] for r in rows])), 3),
            "top_counts": {t: tops.count(t) for t in sorted(set(tops))},
            "top_ekman_shares": {t: round(ekman.count(t) / len(rows), 3) for t in sorted(set(ekman))},
            "largest_top_ekman_share": round(max(ekman.count(t) for t in ekman) / len(rows), 3),
            "stream_checks_passed": sum(v >= margin for _, _, v in stream), "stream_checks": len(stream),
            "stream_too_short": len(rows) * len(CHECKS) - len(stream) - stream_apart, "stream_no_effect": stream_apart,
            "no_effect": no_effect,
            "smallest_stream_margin": min(stream, key=lambda c: c[2]) if stream else None,
            "most_common_ekman_top": most,
            "most_common_ekman_top_share": round(ekman_tops.count(most) / len(rows), 3) if most else 0.0,
            "checks_passed": sum(v >= margin for _, _, v in checks), "checks": len(checks),
            "too_short": [c[:2] for c in named if c[2] == SHORT],
            "smallest_margin": min(checks, key=lambda c: c[2]) if checks else None}


def stability(windows) -> dict:
    """How much the output moves from window to window: dominant-emotion flips per minute, mean |dV|, |dA|."""
    tops = [top_class(w.probs, w.neutral) for w in windows]
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


def photo_checks(paths: list[Path], smiling=SMILING, frowning=FROWNING) -> list[dict]:
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
        expect = "joy" if (p.name in smiling or "astronaut" in p.name) else "negative" if p.name in frowning else "-"
        v = va_from_probs(ek[0], ek[1])[0] if ek else None
        top = top_class(ek[0], ek[1]) if ek else None
        ok = None if expect == "-" else (top == "joy") if expect == "joy" else (v is not None and v < 0)
        rows.append({"photo": p.name, "expect": expect, "faces": len(faces),
                     "expressions": [FER_CLASSES[int(np.argmax(f.probs7))] for f in faces],
                     "top": top, "valence": None if v is None else round(v, 3), "ok": ok})
    return rows


# ---------------------------------------------------------------- a strongly coloured passage, rendered

def passage_frames(frames: list[Frame], pool: list[list[Frame]] | None = None, calm_s: float = 12.0,
                   passage_s: float = 10.0, fps: float = 25.0, shot_s: float = 0.5) -> tuple[list[np.ndarray], tuple[float, float]]:
    """calm_s of the clip as it is, passage_s darkened and cold with a cut every shot_s, calm_s as it is.
    The passage's shots come from all the clips in `pool` (default: this one), each from a random point
    with its own framing (a 60-90% crop), so that every cut is a visible change of picture. A clip
    shorter than a calm section plays forwards and backwards (no jump that would read as a cut)."""
    imgs = [f.image for f in frames]
    loop = imgs + imgs[-2:0:-1] if len(imgs) > 2 else imgs
    h, w = imgs[0].shape[:2]

    def calm(offset: int, n: int):
        return [loop[(offset + i) % len(loop)] for i in range(n)]

    n_calm, n_pass = int(calm_s * fps), int(passage_s * fps)
    rng = np.random.default_rng(0)
    sources = [[f.image for f in clip] for clip in (pool or [frames])]
    dark = []
    for k in range(int(np.ceil(passage_s / shot_s))):
        src = sources[k % len(sources)]
        j = int(rng.integers(len(src)))
        zoom = float(rng.uniform(0.6, 0.9))
        for i in range(int(shot_s * fps)):
            img = src[min(j + i, len(src) - 1)]
            sh, sw = img.shape[:2]
            ch, cw = int(sh * zoom), int(sw * zoom)
            y0, x0 = int((sh - ch) * (k * 0.37 % 1)), int((sw - cw) * (k * 0.61 % 1))
            crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
            dark.append(colour(crop, 0.4, 0.4, 0, cold=12))
    seq = calm(0, n_calm) + dark[:n_pass] + calm(len(loop) // 2, n_calm)
    return seq, (calm_s, calm_s + passage_s)


def write_clip(path: Path, images: list[np.ndarray], fps: float = 25.0) -> None:
    import av
    from fractions import Fraction
    h, w = images[0].shape[0] & ~1, images[0].shape[1] & ~1
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        for img in images:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def section_music(notes, emotion, start: float, end: float) -> dict:
    """Key score (major-ness of the pitched notes) and notes per second between start and end."""
    from cuecast.models.music.metrics import key_score
    sel = [n for n in notes if start <= n.start < end]
    wins = [w for w in emotion if start <= (w.start + w.end) / 2 < end]
    return {"from": start, "to": end, "key_score": round(key_score(sel), 3),
            "notes_per_s": round(len(sel) / (end - start), 2),
            "valence": round(float(np.mean([w.valence for w in wins])), 3) if wins else None,
            "arousal": round(float(np.mean([w.arousal for w in wins])), 3) if wins else None}


def passage_check(video: Path, passage: tuple[float, float], duration: float, settle_s: float = 3.0,
                  generator: str | None = None, seed: int = 0) -> dict:
    """Render `video` and compare the music of the passage with the calm sections before and after it.
    Each section leaves out settle_s after a change (the emotion is smoothed over ~2 s)."""
    from cuecast.engine.config import load_config
    from cuecast.engine.render import analyse
    overrides = {"generator.seed": seed, "output.report": False}
    if generator:  # None: the configured default generator
        overrides["generator.backend"] = generator
    cfg = load_config(None, overrides)
    timeline, notes, _ = analyse(video, cfg, progress=False)
    a, b = passage
    secs = {"before": section_music(notes, timeline.emotion, settle_s, a),
            "passage": section_music(notes, timeline.emotion, a + settle_s, b),
            "after": section_music(notes, timeline.emotion, b + settle_s, duration)}
    calm = (secs["before"], secs["after"])
    p = secs["passage"]
    return {**secs, "generator": cfg.generator.backend, "mode_lower": all(p["key_score"] < c["key_score"] for c in calm),
            "denser": all(p["notes_per_s"] > c["notes_per_s"] for c in calm),
            "mode_drop": round(min(c["key_score"] for c in calm) - p["key_score"], 3),
            "density_ratio": round(p["notes_per_s"] / max(max(c["notes_per_s"] for c in calm), 1e-9), 2)}


PASSAGE_SEEDS = (0, 1, 2, 3, 4)


def passage_over_seeds(video: Path, passage: tuple[float, float], duration: float, generator: str | None = None,
                       seeds: tuple[int, ...] = PASSAGE_SEEDS) -> dict:
    """passage_check on several sampling paths, read by their medians. A render is one path of a stochastic
    generator, and a section's key score moves by +-0.2 with the notes that path happened to draw: one path tells
    what the generator did once (a change that only reshuffles the draws, e.g. an emotion value in the third
    decimal, can flip it), the median of five what it does. The example shown is the path with the median drop."""
    runs = [passage_check(video, passage, duration, generator=generator, seed=s) for s in seeds]
    drops = [r["mode_drop"] for r in runs]
    drop, ratio = float(np.median(drops)), float(np.median([r["density_ratio"] for r in runs]))
    typical = runs[int(np.argsort(drops)[len(runs) // 2])]
    return {**typical, "mode_drop": round(drop, 3), "density_ratio": round(ratio, 2), "mode_lower": drop > 0,
            "denser": ratio > 1.0, "seeds": {s: (r["mode_drop"], r["density_ratio"]) for s, r in zip(seeds, runs)}}


DAYLIGHT = (128, 120, 104)  # near the calibration's centre (mean luma 0.44): an overcast day, mild warmth and chroma


def synthetic_passage(path: Path) -> tuple[tuple[float, float], float]:
    """cuecast.testmedia's version of the clip: two steady daylight shots (12 s), 20 dark cold shots of 0.5 s
    panning fast, two steady daylight shots again (12 s). Returns (passage span, duration)."""
    from cuecast.testmedia.video import make_test_video
    segments = [(6.0, DAYLIGHT, 0.0), (6.0, (160, 150, 120), 0.0)]  # calm: two long steady shots
    segments += [(0.5, (25 + 6 * (k % 3), 28, 55 + 5 * (k % 4)), 4.0) for k in range(20)]
    segments += [(6.0, (145, 140, 118), 0.0), (6.0, DAYLIGHT, 0.0)]
    make_test_video(path, segments, fps=25, size=(320, 180))
    return (12.0, 22.0), 34.0


def passage_eval(clip: Path, pool: list[Path] = (), generator: str | None = None) -> dict:
    if str(clip) == "testmedia":
        with tempfile.TemporaryDirectory() as d:
            span, duration = synthetic_passage(Path(d) / "passage.mp4")
            out = passage_over_seeds(Path(d) / "passage.mp4", span, duration, generator=generator)
        return {"clip": "testmedia (synthetic daylight shots)", "pool": ["testmedia (dark cold shots)"], **out}
    frames, _ = decode(clip)
    images, span = passage_frames(frames, [decode(p)[0] for p in pool] or None)
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "passage.mp4"
        write_clip(video, images)
        out = passage_over_seeds(video, span, len(images) / 25.0, generator=generator)
    return {"clip": clip.name, "pool": [p.name for p in pool] or [clip.name], **out}


# ---------------------------------------------------------------- output

def markdown(clips: list[dict], summ: dict, photos: list[dict], margin: float) -> str:
    long = [f"{r['clip']} (its {r['checks_s']:g} s from {r['checks_from_s']:g} s)" for r in clips if "checks_from_s" in r]
    lines = ["| clip | mean V | mean A | neutral | top | top Ekman |", "|---|---|---|---|---|---|"]
    for r in clips:
        lines.append(f"| {r['clip']} | {r['valence']:+.2f} | {r['arousal']:+.2f} | {r['neutral']:.2f} | {r['top']} | {r['top_ekman']} |")
    lines += ["", f"median clip valence {summ['median_valence']:+.2f} (arousal {summ['median_arousal']:+.2f}) over "
              f"{summ['clips']} clips; mean neutral share {summ['mean_neutral']:.2f}; top classes {summ['top_counts']}; "
              f"top Ekman class shares {summ['top_ekman_shares']} (largest {100 * summ['largest_top_ekman_share']:.0f}%; "
              f"among clips whose top is an Ekman class: {summ['most_common_ekman_top']} on "
              f"{100 * summ['most_common_ekman_top_share']:.0f}%)", "",
              f"Directional checks between clips (calibrated path, adaptation off): each value is the margin (must be >= {margin}):", "",
              *(["Clips longer than --max-seconds are checked on their middle: " + "; ".join(long), ""] if long else []),
              "| clip | V bright-orig | V orig-dark | A 2x-orig | A cuts-orig | A orig-still | A sound-quiet |",
              "|---|---|---|---|---|---|---|"]
    for r in clips:
        vals = [(r.get(k), r.get(f"{k}_no_effect") and r[f"{k}_input"]) for k in (*CHECKS, "louder_higher_arousal")]
        lines.append(f"| {r['clip']} | " + " | ".join(cell(v, margin, noeff) for v, noeff in vals) + " |")
    lines += ["", f"{summ['checks_passed']}/{summ['checks']} checks with margin >= {margin}; smallest: "
              f"{summ['smallest_margin']}; {len(summ['too_short'])} too short to measure (a compared clip or variant "
              f"shorter than one {EmotionConfig.window_s:g} s window): {summ['too_short']}; {len(summ['no_effect'])} where the "
              f"treatment had no effect on the picture or sound (its input signals moved < {NO_EFFECT} spreads, the sound's "
              f"loudness < {NO_EFFECT_DB:g} dB; clip, check, input change): {summ['no_effect']}", "",
              "The same checks in one stream (default config, adaptation on; the clip, then the variant):", "",
              "| clip | V bright-orig | V orig-dark | A 2x-orig | A cuts-orig | A orig-still |", "|---|---|---|---|---|---|"]
    for r in clips:
        vals = [(r.get(f"{k}_in_stream"), r.get(f"{k}_no_effect") and r[f"{k}_input"]) for k in CHECKS]
        lines.append(f"| {r['clip']} | " + " | ".join(SHORT if v is None or not np.isfinite(v) else cell(v, margin, noeff)
                                                      for v, noeff in vals) + " |")
    lines += ["", f"{summ['stream_checks_passed']}/{summ['stream_checks']} in-stream checks with margin >= {margin}; smallest: "
              f"{summ['smallest_stream_margin']}; {summ['stream_too_short']} too short to measure (a part shorter than "
              f"{SETTLE_S:g} s + one window: no window after the switch has settled); {summ['stream_no_effect']} where the "
              f"treatment had no effect on the picture (as between clips)", "",
              "Stability (original clip) and response to a real change (one frame 8 s darkened, then brightened):", "",
              "| clip | top-class flips/min | mean abs dV | mean abs dA | step in V | 63% after | 90% after |",
              "|---|---|---|---|---|---|---|"]
    for r in clips:
        lines.append(f"| {r['clip']} | {r['flips_per_min']} | {r['mean_abs_dv']:.3f} | {r['mean_abs_da']:.3f} | "
                     f"{r['step_v']:+.2f} | {r['t63_s']} s | {r['t90_s']} s |")
    if photos:
        lines += ["", "| photo | expected | faces found | expressions | top | valence | ok |", "|---|---|---|---|---|---|---|"]
        for r in photos:
            v = "-" if r["valence"] is None else f"{r['valence']:+.2f}"
            ok = "-" if r["ok"] is None else "yes" if r["ok"] else "NO"
            lines.append(f"| {r['photo']} | {r['expect']} | {r['faces']} | {', '.join(r['expressions'])} | {r['top']} | {v} | {ok} |")
    return "\n".join(lines)


def cell(v, margin: float, no_effect) -> str:
    """A check's table cell: its margin, FAIL below `margin`, or why it was not counted."""
    if v is None:
        return "-"
    if v == SHORT:
        return v
    if no_effect is not None and no_effect is not False:
        return f"{v:+.2f} ({NOEFF}: input {no_effect:+.2f})"
    return f"{v:+.2f}{'' if v >= margin else ' FAIL'}"


def passage_markdown(res: dict) -> str:
    lines = [f"Passage check ({res['generator']}): 12 s of {res['clip']} as it is, 10 s dark + cold cut every 0.5 s "
             f"between shots of {', '.join(res['pool'])}, 12 s of {res['clip']} as it is", "",
             "| section | seconds | mean V | mean A | key score | notes/s |", "|---|---|---|---|---|---|"]
    for k in ("before", "passage", "after"):
        s = res[k]
        lines.append(f"| {k} | {s['from']:.0f}-{s['to']:.0f} | {s['valence']:+.2f} | {s['arousal']:+.2f} | "
                     f"{s['key_score']:+.2f} | {s['notes_per_s']:.2f} |")
    per_seed = ", ".join(f"seed {s} {d:+.2f} x{r}" for s, (d, r) in res["seeds"].items())
    lines += ["", f"Sections: the path with the median drop. Over {len(res['seeds'])} seeds (medians): mode lower in the passage: "
              f"{'yes' if res['mode_lower'] else 'NO'} (drop {res['mode_drop']:+.2f}); denser: "
              f"{'yes' if res['denser'] else 'NO'} (x{res['density_ratio']}); per seed (drop, density): {per_seed}"]
    return "\n".join(lines)


def find_clips(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXT)
        elif p.is_file():
            out.append(p)
        else:
            sys.exit(f"{Path(sys.argv[0]).stem}: no such file or folder: {p}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", help="clips or folders of clips (e.g. /work/shared/media)")
    ap.add_argument("--held-out", action="store_true", help="add tools/packaged_clips.py's held-out clips (fetched with apt-get download)")
    ap.add_argument("--margin", type=float, default=0.2, help="smallest difference a directional check needs (default %(default)s)")
    ap.add_argument("--photos", nargs="*", default=None, help="photos of people (default: opencv-doc's)")
    ap.add_argument("--frowning", nargs="*", default=(), help="names of the photos that show a frowning or crying face")
    ap.add_argument("--passage", metavar="CLIP", help="also render CLIP with a dark fast-cut passage (see above; "
                    "'testmedia': the synthetic clip the unit test renders)")
    ap.add_argument("--passage-pool", nargs="*", default=(), metavar="CLIP",
                    help="clips the passage cuts between (default: the --passage clip alone)")
    ap.add_argument("--generator", default=None, help="generator for --passage (default: the configured one)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--jobs", type=int, default=1, help="clips evaluated in parallel processes (default %(default)s)")
    ap.add_argument("--max-seconds", type=float, default=MAX_S, metavar="S",
                    help="a longer clip is read whole for its row, and its checks run on its middle S seconds "
                         "(memory and time stay bounded; 0: the whole clip; default %(default)g)")
    args = ap.parse_args()
    if args.max_seconds < 0:
        ap.error("--max-seconds must be 0 (the whole clip) or more")
    if not args.media and not args.passage and not args.held_out:
        ap.error("name clips or folders, or --passage CLIP")
    result: dict = {}
    if args.media or args.held_out:
        paths = find_clips(args.media)
        if args.held_out:
            from packaged_clips import HELD_OUT, fetch
            paths += fetch(HELD_OUT)
        clips = clip_rows(paths, args.jobs, args.max_seconds)
        if not clips:
            sys.exit("eval_emotion: no decodable clips")
        summ = summary(clips, args.margin)
        photo_paths = [Path(p) for p in args.photos] if args.photos is not None else \
            [OPENCV_DOC / n for n in SMILING + FROWNING + PEOPLE if (OPENCV_DOC / n).is_file()]
        photos = photo_checks(photo_paths, frowning=tuple(FROWNING) + tuple(args.frowning))
        print(markdown(clips, summ, photos, args.margin))
        result.update(clips=clips, summary=summ, photos=photos)
    if args.passage:
        res = passage_eval(Path(args.passage), [Path(p) for p in args.passage_pool], args.generator)
        print()
        print(passage_markdown(res))
        result["passage"] = res
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
