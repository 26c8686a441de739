"""Benchmark of the music transformer, side by side in one run:

- next-token speed with the KV cache against recomputing the whole context for every token (EMSYNC's way),
  same model, same full context;
- generation through the engine's compose path: seconds of music per second of compute;
- music metrics of generated pieces next to the held-out corpus (pitch-in-scale rate, pitch-class entropy,
  empty-beat rate, polyphony), and the same through muspy (Dong et al. 2020; the `eval` extra), whose
  definitions published results use: pitch-class entropy, scale consistency, empty-beat rate, polyphony,
  groove consistency;
- cut alignment on the real clips' cut lists (media_dir/cuts.json).

    python tools/bench_music.py ../shared/media [--weights W] [--data data/music]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cuecast.models.music import metrics as MM
from cuecast.models.music import model as M
from cuecast.models.music import tokens as T
from cuecast.models.music.transformer import DEFAULT_WEIGHTS
from cuecast.types import Note

ROOT = Path(__file__).resolve().parents[1]


def _seq(model: M.MusicTransformer, data: Path | None, n: int) -> tuple[list[int], list[tuple[float, float, float]]]:
    """n real tokens with their conditions from the held-out corpus (random valid tokens without one)."""
    if data is not None and (data / "corpus.npz").exists():
        z = np.load(data / "corpus.npz")
        s = int(z["n_train"])
        toks = z["tokens"][s:s + n].astype(int).tolist()
        conds = np.stack([z["valence"], z["arousal"], z["offset"]], 1)[s:s + n].astype(float).tolist()
        if len(toks) == n:
            return toks, [tuple(c) for c in conds]
    g = torch.Generator().manual_seed(0)
    return torch.randint(4, model.cfg.vocab_size, (n,), generator=g).tolist(), [(0.0, 0.0, math.nan)] * n


@torch.no_grad()
def cache_vs_full(model: M.MusicTransformer, data: Path | None, blocks: int = 10, block: int = 20, n_full: int = 10) -> dict:
    """Tokens/s at a full context: KV-cache steps (sliding window) against whole-context recomputation.

    The machine is shared: each side keeps its best block (least interference), median shown too."""
    ctx = model.cfg.context
    toks, conds = _seq(model, data, ctx + blocks * block + n_full)
    cache = model.new_cache()
    for i in range(ctx):
        model.step(toks[i], *conds[i], cache)
    kv_times = []
    for b in range(blocks):
        t = time.perf_counter()
        for i in range(ctx + b * block, ctx + (b + 1) * block):
            model.step(toks[i], *conds[i], cache)
        kv_times.append((time.perf_counter() - t) / block)
    full_times = []
    for i in range(ctx, ctx + n_full):
        t = time.perf_counter()
        model.full_step(toks[: i + 1], conds[: i + 1])
        full_times.append(time.perf_counter() - t)
    kv, full = 1 / min(kv_times), 1 / min(full_times)
    return {"context": ctx, "kv_tokens_per_s": kv, "full_tokens_per_s": full, "ratio": kv / full,
            "kv_median": 1 / statistics.median(kv_times), "full_median": 1 / statistics.median(full_times)}


def corpus_notes(data: Path, max_pieces: int = 200) -> list[tuple[list[Note], list[float]]]:
    """Held-out pieces as notes in seconds, with their beat times."""
    z = np.load(data / "corpus.npz")
    meta = [m for m in json.loads((data / "pieces.json").read_text()) if m["split"] == "heldout"][:max_pieces]
    out = []
    for m in meta:
        toks = z["tokens"][m["start"]:m["start"] + m["length"]].astype(int)
        sec = z["sec"][m["start"]:m["start"] + m["length"]].astype(float)
        ticks = np.cumsum([t - T.SHIFT0 + 1 if T.KIND[t] == 1 else 0 for t in toks])
        if ticks[-1] < T.TICKS_PER_BEAT * 4:
            continue
        to_s = lambda x: float(np.interp(x, ticks, sec))  # noqa: E731
        notes = [Note(to_s(n.start * T.TICKS_PER_BEAT), to_s(n.end * T.TICKS_PER_BEAT), n.pitch, n.velocity,
                      T.TO_CUECAST[T.INSTS[n.inst]]) for n in T.to_notes(toks.tolist())]
        notes = [n for n in notes if n.end > n.start]
        beats = [to_s(b) for b in range(0, int(ticks[-1]), T.TICKS_PER_BEAT)]
        if notes:
            out.append((notes, beats))
    return out


def music_metrics(pieces: list[tuple[list[Note], list[float]]]) -> dict:
    rows = [(MM.pitch_in_scale_rate(n), MM.pitch_class_entropy(n), MM.empty_beat_rate(n, beats=b), MM.polyphony(n),
             MM.notes_per_second(n)) for n, b in pieces]
    keys = ("pitch_in_scale", "pc_entropy", "empty_beat_rate", "polyphony", "notes_per_s")
    return {k: statistics.fmean(r[i] for r in rows if not math.isnan(r[i])) for i, k in enumerate(keys)} | {"pieces": len(rows)}


MUSPY_RESOLUTION = 12  # ticks per beat, as the transformer's grid


def muspy_music(notes: list[Note], beats: list[float], drums: bool):
    """A muspy.Music of the notes (without the drums unless `drums`), their times mapped to ticks through the beat times (any tempo map)."""
    import muspy

    grid = np.asarray(beats, dtype=float)
    idx = np.arange(len(grid), dtype=float)
    tick = lambda t: int(round(float(np.interp(t, grid, idx, right=idx[-1] + (t - grid[-1]) / max(1e-6, grid[-1] - grid[-2]))) * MUSPY_RESOLUTION))  # noqa: E731
    tracks: dict[str, list] = {}
    for n in notes:
        if n.instrument == "drums" and not drums:
            continue
        s, e = tick(n.start), tick(n.end)
        tracks.setdefault(n.instrument, []).append(muspy.Note(s, n.pitch, max(1, e - s), n.velocity))
    return muspy.Music(resolution=MUSPY_RESOLUTION, tempos=[muspy.Tempo(0, 60.0 / max(1e-3, float(np.median(np.diff(grid)))))],
                       tracks=[muspy.Track(is_drum=k == "drums", notes=v) for k, v in tracks.items()])


def muspy_metrics(pieces: list[tuple[list[Note], list[float]]], beats_per_bar: int = 4) -> dict:
    """muspy's metrics, mean over pieces: pitch ones over the pitched parts, rhythm ones over all parts."""
    import muspy

    rows = []
    for notes, beats in pieces:
        if len(beats) < 2 or not any(n.instrument != "drums" for n in notes):
            continue
        pitched, every = muspy_music(notes, beats, drums=False), muspy_music(notes, beats, drums=True)
        rows.append({"pitch_class_entropy": muspy.pitch_class_entropy(pitched),
                     "scale_consistency": muspy.scale_consistency(pitched),
                     "polyphony": muspy.polyphony(pitched),
                     "empty_beat_rate": muspy.empty_beat_rate(every),
                     "groove_consistency": muspy.groove_consistency(every, beats_per_bar * MUSPY_RESOLUTION)})
    return {k: round(statistics.fmean(r[k] for r in rows if not math.isnan(r[k])), 3) for k in rows[0]} | {"pieces": len(rows)} if rows else {}


def clip_cuts(media_dir: Path) -> dict[str, tuple[list[float], float]]:
    info = json.loads((media_dir / "cuts.json").read_text())["clips"]
    out = {}
    for name, c in info.items():
        cuts = sorted([float(x) for x in c.get("hard", [])] + [float(g[0]) for g in c.get("gradual", [])])
        m = re.search(r"([\d.]+)\s*s\b", c.get("size", ""))
        dur = float(m.group(1)) if m else (max(cuts) + 3.0 if cuts else 0.0)
        if cuts and dur > 2:
            out[name] = (cuts, dur)
    return out


def run(media_dir: str, weights: str | None = None, data: str = "data/music", seconds: float = 20.0) -> list[dict]:
    from cuecast.engine.compose import compose
    from cuecast.engine.config import load_config

    torch.set_num_threads(1)
    weights = weights or str(DEFAULT_WEIGHTS)
    model, ck = M.load(weights, "cpu")
    data_p = Path(data) if data and (Path(data) / "corpus.npz").exists() else None
    rows: list[dict] = []
    sp = cache_vs_full(model, data_p)
    rows.append({"what": "next token, KV cache vs full recompute", "model": f"{model.n_params()/1e6:.2f}M params, ctx {sp['context']}",
                 "kv_tok_s": round(sp["kv_tokens_per_s"], 1), "full_tok_s": round(sp["full_tokens_per_s"], 2),
                 "ratio": round(sp["ratio"], 1), "median_ratio": round(sp["kv_median"] / sp["full_median"], 1)})
    cfg = load_config(None, {"generator.backend": "transformer", "generator.weights": str(Path(weights).resolve())})
    gen_pieces, music_s, compute_s = [], 0.0, 0.0
    for v, a in ((-0.7, -0.7), (-0.7, 0.7), (0.7, -0.7), (0.7, 0.7), (0.0, 0.0)):
        t = time.perf_counter()
        notes, tl = compose(cfg, v, a, seconds, [], seed=0)
        compute_s += time.perf_counter() - t
        music_s += seconds
        bpm = tl.tempo[0][1] if tl.tempo else 120.0
        gen_pieces.append((notes, MM.beat_times(bpm, seconds)))
    rows.append({"what": "generation through compose (5 emotions)", "music_s": round(music_s, 1),
                 "compute_s": round(compute_s, 2), "x_realtime": round(music_s / compute_s, 1)})
    gm = music_metrics(gen_pieces)
    rows.append({"what": "metrics: generated", **{k: round(x, 3) for k, x in gm.items()}})
    held = corpus_notes(data_p) if data_p is not None else []
    if held:
        cm = music_metrics(held)
        rows.append({"what": "metrics: held-out corpus", **{k: round(x, 3) for k, x in cm.items()}})
    if _has_muspy():
        rows.append({"what": "muspy: generated (transformer)", **muspy_metrics(gen_pieces)})
        arr = load_config(None, {"generator.backend": "arranger"})
        arr_pieces = []
        for v, a in ((-0.7, -0.7), (-0.7, 0.7), (0.7, -0.7), (0.7, 0.7), (0.0, 0.0)):
            notes, tl = compose(arr, v, a, seconds, [], seed=0)
            arr_pieces.append((notes, MM.beat_times(tl.tempo[0][1] if tl.tempo else 120.0, seconds)))
        rows.append({"what": "muspy: generated (arranger)", **muspy_metrics(arr_pieces)})
        if held:
            rows.append({"what": "muspy: held-out corpus", **muspy_metrics(held)})
    media = Path(media_dir)
    if (media / "cuts.json").exists():
        for name, (cuts, dur) in clip_cuts(media).items():
            notes, _ = compose(cfg, 0.2, 0.2, dur, cuts, seed=0)
            al = MM.cut_alignment(notes, cuts, dur)
            rows.append({"what": f"cuts of {name}", "cuts": len(cuts), "hit_rate": round(al["hit_rate"], 3),
                         "random_rate": round(al["random_rate"], 3)})
    rows.append({"what": "checkpoint", "step": ck.get("step"), "heldout_loss": round(float(ck.get("heldout_loss", math.nan)), 4),
                 "minutes": round(float(ck.get("minutes", math.nan)), 1)})
    return rows


def _has_muspy() -> bool:
    try:
        import muspy  # noqa: F401
    except ImportError:
        print("bench_music: muspy not installed (pip install -e .[eval]): its metrics are skipped", file=sys.stderr)
        return False
    return True


def markdown(rows: list[dict]) -> str:
    lines = ["### Music transformer", ""]
    for r in rows:
        rest = ", ".join(f"{k} {v}" for k, v in r.items() if k != "what")
        lines.append(f"- **{r['what']}**: {rest}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("media_dir")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data", default=str(ROOT / "data" / "music"))
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args(argv)
    try:
        rows = run(a.media_dir, a.weights, a.data, a.seconds)
    except (FileNotFoundError, ValueError) as e:
        print(f"bench_music: error: {e}", file=sys.stderr)
        return 2
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
