"""Can a listener hear the cuts in a rendered soundtrack? Measured on the audio (WAV), not on the MIDI.

For every hard cut and for random moments at least 0.75 s away from any cut (hard or gradual):
- onset strength: the largest spectral flux (half-wave rectified rise of the log spectrum, 10 ms frames)
  within +-50 ms of the moment, divided by the file's median flux (files differ in loudness);
- change of harmony: the cosine distance between the chroma (energy per pitch class, 55 Hz-5 kHz, 93 ms
  frames so that semitones are resolved in the bass and pad register) of the 0.75 s before the moment and
  of the 0.75 s after it (each leaving out 50 ms next to the moment).
Each is reported as an AUC: the chance that a cut scores higher than a random moment (0.5 = cuts sound
like any other moment, 1.0 = every cut stands out).

    python tools/eval_audio_cuts.py                          # render the real clips with both generators, seeds 0,1
    python tools/eval_audio_cuts.py --generator transformer --weights runs/music/best.pt --seeds 0
    python tools/eval_audio_cuts.py --wav out/soundtrack.wav --cuts 2.8,6.8,12.04
    python tools/eval_audio_cuts.py --media /work/shared/media --edit out/edit.mp4:out/edit_cuts.json
    python tools/eval_audio_cuts.py --compose 4          # quick: composed 60 s pieces with 20+ cuts, no video

Renders use `cuecast render` (lookahead 3 s, the default), so the cuts are known ahead as in an offline render.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

FRAME_S = 0.046  # STFT frame for onsets (2048 samples at 44.1 kHz): fine in time
# STFT frame for chroma (4096 samples at 44.1 kHz, 10.8 Hz bins, as librosa's chroma_stft default): fine in
# pitch. With 46 ms frames the bins are 21.5 Hz wide, wider than a semitone below ~370 Hz, so the pitch
# classes of the bass, pad and chords smear into their neighbours and a change of chord there goes unseen
CHROMA_FRAME_S = 0.093
HOP_S = 0.010
ONSET_WINDOW_S = 0.05  # a cut's accent may fall this far either side of it
CHROMA_SPAN_S = 0.75  # harmony before vs after
CHROMA_GAP_S = 0.05
MIN_DISTANCE_S = 0.75  # random moments: at least this far from any cut
N_RANDOM = 40  # random moments per file
DEFAULT_MEDIA = Path("/work/shared/media")


# ---- the measures (pure functions over a mono signal) -------------------------------------------------

def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float signal and sample rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        sr, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype=np.int16).astype(np.float32) / 32768.0
    return x.reshape(-1, ch).mean(axis=1), sr


def spectrogram(x: np.ndarray, sr: int, frame_s: float = FRAME_S) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes (frames, bins) and bin frequencies; frame i is centred at i * HOP_S."""
    n = 1 << int(np.ceil(np.log2(frame_s * sr)))
    hop = int(round(HOP_S * sr))
    pad = np.pad(x, (n // 2, n // 2))
    idx = np.arange(0, len(pad) - n + 1, hop)[:, None] + np.arange(n)[None, :]
    mag = np.abs(np.fft.rfft(pad[idx] * np.hanning(n)[None, :], axis=1))
    return mag, np.fft.rfftfreq(n, 1.0 / sr)


def spectral_flux(mag: np.ndarray) -> np.ndarray:
    """Per frame: the summed rise of the log-compressed spectrum since the previous frame."""
    lg = np.log1p(100.0 * mag)
    return np.concatenate([[0.0], np.maximum(0.0, np.diff(lg, axis=0)).sum(axis=1)])


def chroma(mag: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(frames, 12) energy per pitch class of the bins between 55 Hz and 5 kHz."""
    ok = (freqs >= 55.0) & (freqs <= 5000.0)
    pc = (np.round(12 * np.log2(freqs[ok] / 440.0)).astype(int) + 69) % 12
    out = np.zeros((mag.shape[0], 12))
    for k in range(12):
        out[:, k] = (mag[:, ok][:, pc == k] ** 2).sum(axis=1)
    return out


def moment_scores(flux: np.ndarray, chr_: np.ndarray, times: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(onset strength, change of harmony) at each moment."""
    med = float(np.median(flux[flux > 0])) if (flux > 0).any() else 1.0
    n = len(flux)

    def frames(a: float, b: float) -> slice:
        return slice(max(0, int(np.floor(a / HOP_S))), min(n, int(np.ceil(b / HOP_S)) + 1))

    onset, harmony = [], []
    for t in times:
        w = flux[frames(t - ONSET_WINDOW_S, t + ONSET_WINDOW_S)]
        onset.append(float(w.max()) / med if len(w) else 0.0)
        before = chr_[frames(t - CHROMA_SPAN_S, t - CHROMA_GAP_S)].mean(axis=0)
        after = chr_[frames(t + CHROMA_GAP_S, t + CHROMA_SPAN_S)].mean(axis=0)
        den = float(np.linalg.norm(before) * np.linalg.norm(after))
        harmony.append(1.0 - float(before @ after) / den if den > 1e-12 else 0.0)
    return np.array(onset), np.array(harmony)


def random_moments(duration: float, avoid: list[float], n: int, rng: np.random.Generator) -> list[float]:
    """n moments in the file at least MIN_DISTANCE_S from every time in `avoid` and from both ends."""
    lo, hi = CHROMA_SPAN_S + 0.05, duration - CHROMA_SPAN_S - 0.05
    if hi <= lo:
        return []
    cand = np.arange(lo, hi, HOP_S)
    if avoid:
        d = np.min(np.abs(cand[:, None] - np.array(avoid)[None, :]), axis=1)
        cand = cand[d >= MIN_DISTANCE_S]
    if not len(cand):
        return []
    return sorted(rng.choice(cand, size=min(n, len(cand)), replace=False).tolist())


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a cut scores higher than a random moment), ties counted half (Mann-Whitney)."""
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).mean()
    eq = (pos[:, None] == neg[None, :]).mean()
    return float(gt + 0.5 * eq)


def score_wav(wav: str | Path, hard: list[float], gradual: list[float] = (), seed: int = 0) -> dict:
    """Onset and harmony scores at the hard cuts and at random moments of one WAV."""
    x, sr = read_wav(wav)
    duration = len(x) / sr
    flux = spectral_flux(spectrogram(x, sr)[0])
    chr_ = chroma(*spectrogram(x, sr, CHROMA_FRAME_S))
    n = min(len(flux), len(chr_))  # the same hop: frame i is at i * HOP_S in both
    flux, chr_ = flux[:n], chr_[:n]
    cuts = [t for t in hard if CHROMA_SPAN_S <= t <= duration - CHROMA_SPAN_S]
    rand = random_moments(duration, list(hard) + list(gradual), N_RANDOM, np.random.default_rng(seed))
    co, ch = moment_scores(flux, chr_, cuts)
    ro, rh = moment_scores(flux, chr_, rand)
    return {"cuts": len(cuts), "random": len(rand), "cut_onset": co.tolist(), "cut_harmony": ch.tolist(),
            "random_onset": ro.tolist(), "random_harmony": rh.tolist(), "seconds": duration}


def pooled(scores: list[dict]) -> dict:
    """AUCs over every cut and random moment of several files."""
    cat = lambda k: np.concatenate([np.array(s[k]) for s in scores]) if scores else np.array([])  # noqa: E731
    return {"onset_auc": auc(cat("cut_onset"), cat("random_onset")),
            "harmony_auc": auc(cat("cut_harmony"), cat("random_harmony")),
            "cuts": int(sum(s["cuts"] for s in scores)), "random": int(sum(s["random"] for s in scores))}


# ---- rendering ------------------------------------------------------------------------------------------

def clips_with_cuts(media: Path) -> list[tuple[Path, list[float], list[float]]]:
    """(video, hard cuts, gradual transition midpoints) of the clips in media/cuts.json that have hard cuts."""
    meta = json.loads((media / "cuts.json").read_text())["clips"]
    out = []
    for name, m in sorted(meta.items()):
        if m.get("hard") and (media / name).exists():
            gradual = [t for g in m.get("gradual", []) for t in g]
            out.append((media / name, list(m["hard"]), gradual))
    return out


def render(video: Path, outdir: Path, generator: str, seed: int, config: str | None) -> float:
    """`cuecast render` one clip; returns the wall seconds it took."""
    exe = Path(sys.executable).parent / "cuecast"
    cmd = [str(exe), "render", str(video), "-o", str(outdir), "--seed", str(seed), "--generator", generator, "-q"]
    if config:
        cmd += ["--config", config]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"eval_audio_cuts: render of {video.name} failed: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def transformer_config(weights: str, extra: dict[str, float]) -> str | None:
    lines = ["[generator]"]
    if weights:
        lines.append(f"weights = {json.dumps(str(Path(weights).resolve()))}")
    lines += [f"{k} = {v}" for k, v in extra.items() if v is not None]
    if len(lines) == 1:
        return None
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write("\n".join(lines) + "\n")
    f.close()
    return f.name


def composed(generator: str, config: str | None, seed: int, n: int, seconds: float = 60.0) -> list[dict]:
    """Scores of n pieces composed (`cuecast compose`'s path) over irregular cuts 0.8-6 s apart, at emotions
    spread over the valence x arousal square, synthesised with the render's synth settings."""
    import random

    from cuecast.engine.compose import compose
    from cuecast.engine.config import load_config
    from cuecast.streams.audio_render import render_audio

    cfg = load_config(config)
    cfg.generator.backend = generator
    rng = random.Random(seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            cuts, t = [], rng.uniform(1.0, 4.0)
            while t < seconds - 1.0:
                cuts.append(round(t, 3))
                t += rng.uniform(0.8, 6.0)
            v, a = rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)
            notes, tl = compose(cfg, v, a, seconds, cuts, seed=seed * 100 + i)
            wav = Path(tmp) / f"{i}.wav"
            render_audio(notes, cfg.instrument_map(), seconds, wav, sample_rate=cfg.output.sample_rate,
                         soundfont=cfg.output.soundfont, gain=cfg.output.gain)
            out.append(score_wav(wav, cuts, seed=seed * 100 + i))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wav", help="score this WAV (with --cuts) instead of rendering")
    ap.add_argument("--cuts", default="", help="hard cut times for --wav, comma separated seconds")
    ap.add_argument("--media", default=str(DEFAULT_MEDIA), help="folder with cuts.json and the clips")
    ap.add_argument("--edit", action="append", default=[], metavar="VIDEO:CUTS.json",
                    help="also render an edited video; CUTS.json holds {\"hard\": [...]}; repeatable")
    ap.add_argument("--generator", action="append", choices=("transformer", "arranger"), default=[])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--weights", default="", help="transformer weights (default: the shipped ones)")
    ap.add_argument("--mode-steer", type=float, default=None)
    ap.add_argument("--density-steer", type=float, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--compose", type=int, default=0, metavar="N",
                    help="instead of rendering clips: N composed 60 s pieces per seed with irregular cuts (no video)")
    ap.add_argument("--keep", default="", help="keep the renders in this folder")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.wav:
        try:
            hard = [float(t) for t in a.cuts.split(",") if t.strip()]
            res = score_wav(a.wav, hard)
        except (OSError, ValueError, wave.Error) as e:
            print(f"cuecast: error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({**pooled([res]), "seconds": res["seconds"]}))
        return 0
    media = Path(a.media)
    if not (media / "cuts.json").exists():
        print(f"cuecast: error: no cuts.json in {media}", file=sys.stderr)
        return 2
    clips = clips_with_cuts(media)
    for spec in a.edit:
        video, _, cuts = spec.rpartition(":")
        clips.append((Path(video), json.loads(Path(cuts).read_text())["hard"], []))
    seeds = [int(s) for s in a.seeds.split(",")]
    config = transformer_config(a.weights, {"mode_steer": a.mode_steer, "density_steer": a.density_steer,
                                            "guidance": a.guidance})
    keep = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="eval_audio_cuts_"))
    report = {}
    for gen in a.generator or ["transformer", "arranger"]:
        if a.compose:
            per = {str(sd): composed(gen, config if gen == "transformer" else None, sd, a.compose) for sd in seeds}
            report[gen] = {**pooled([x for v in per.values() for x in v]), "render_x_realtime": float("nan"),
                           "per_seed": {k: pooled(v) for k, v in per.items()}}
            continue
        scores, media_s, wall = [], 0.0, 0.0
        for seed in seeds:
            for video, hard, gradual in clips:
                out = keep / gen / f"{video.stem}_s{seed}"
                wall += render(video, out, gen, seed, config if gen == "transformer" else None)
                s = score_wav(out / "soundtrack.wav", hard, gradual, seed)
                media_s += s["seconds"]
                scores.append(s)
                print(f"{gen} seed {seed} {video.name}: {s['cuts']} cuts", file=sys.stderr, flush=True)
        report[gen] = {**pooled(scores), "render_x_realtime": media_s / wall if wall else float("nan"),
                       "per_seed": {str(sd): pooled(scores[i * len(clips):(i + 1) * len(clips)])
                                    for i, sd in enumerate(seeds)}}
    if config:
        Path(config).unlink(missing_ok=True)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{'generator':<12} {'cuts':>5} {'random':>7} {'onset AUC':>10} {'harmony AUC':>12}  per seed (onset/harmony)")
        for gen, r in report.items():
            per = "  ".join(f"s{k}: {v['onset_auc']:.2f}/{v['harmony_auc']:.2f}" for k, v in r["per_seed"].items())
            print(f"{gen:<12} {r['cuts']:>5} {r['random']:>7} {r['onset_auc']:>10.3f} {r['harmony_auc']:>12.3f}  {per}")
        print(f"renders kept in {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
