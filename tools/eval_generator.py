"""Grid evaluation of a music generator backend (arranger, transformer) through `cuecast compose`'s path.

For a valence x arousal grid it composes N seconds per cell and seed and measures:
  - emotion control: Spearman(valence, key_score) and Spearman(arousal, notes_per_second), plus the
    per-cell key score, density, pitch-in-scale rate, pitch-class entropy, polyphony, empty beats;
  - cut alignment: with a regular and an irregular cut list, the fraction of cuts with a chord onset
    within +-100 ms (hit_rate) and the same for random moments >= 0.5 s from cuts (random_rate);
  - validity: notes out of MIDI range or with end <= start, and speed (seconds of music per second).

    python tools/eval_generator.py --generator arranger [--json] [--grid 5] [--seconds 30] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

import numpy as np
from scipy.stats import spearmanr

from cuecast.engine.compose import compose_notes
from cuecast.engine.config import load_config
from cuecast.engine.errors import UserError
from cuecast.models.music import metrics as M
from cuecast.models.music.theory import tempo_for_arousal


def regular_cuts(seconds: float, every: float = 4.0) -> list[float]:
    return [round(every * k, 3) for k in range(1, int(seconds / every) + 1) if every * k < seconds - 0.5]


def irregular_cuts(seconds: float, seed: int = 0, lo: float = 0.8, hi: float = 6.0) -> list[float]:
    """Cut times with gaps drawn uniformly in [lo, hi] s (shots of film-like, varied length)."""
    rng = random.Random(1000 + seed)
    out, t = [], rng.uniform(lo, hi)
    while t < seconds - 0.5:
        out.append(round(t, 3))
        t += rng.uniform(lo, hi)
    return out


PARTS = ("drums", "bass", "chords", "pad", "melody")


def energy(notes, seconds: float) -> dict:
    """Loudness, register, drum activity and note length of a piece, and each part's notes and level (mean
    MIDI velocity, NaN for a silent part): the balance a listener hears."""
    pitched = [n for n in notes if n.instrument != "drums"]
    mean = lambda xs: statistics.fmean(xs) if xs else float("nan")  # noqa: E731
    return {"mean_velocity": mean([n.velocity for n in notes]),
            "mean_pitch": mean([n.pitch for n in pitched]),
            "drums_per_second": sum(n.instrument == "drums" for n in notes) / seconds,
            "mean_note_length": mean([n.end - n.start for n in pitched]),
            **{f"notes_{part}": sum(n.instrument == part for n in notes) for part in PARTS},
            **{f"level_{part}": mean([n.velocity for n in notes if n.instrument == part]) for part in PARTS}}


def _grid(n: int) -> list[float]:
    return [round(v, 3) for v in np.linspace(-0.9, 0.9, n)]


def run(generator_name: str = "arranger", seconds: float = 30.0, grid: int = 5, seeds: tuple[int, ...] = (0, 1),
        config: str | None = None, align: bool = True) -> dict:
    """Evaluate one backend; returns {"cells": [...], "alignment": [...], "summary": {...}}."""
    cfg = load_config(config)
    cfg.generator.backend = generator_name
    lo, hi = cfg.conductor.tempo_min, cfg.conductor.tempo_max
    cells, alignment = [], []
    invalid = 0
    gen_time = 0.0
    music_s = 0.0
    for v in _grid(grid):
        for a in _grid(grid):
            for seed in seeds:
                t = time.perf_counter()
                notes = compose_notes(cfg, v, a, seconds, [], seed=seed)
                gen_time += time.perf_counter() - t
                music_s += seconds
                invalid += len(M.invalid_notes(notes))
                bpm = tempo_for_arousal(a, lo, hi)
                cells.append({
                    "valence": v, "arousal": a, "seed": seed, "tempo": round(bpm, 1),
                    "key_score": M.key_score(notes),
                    "notes_per_second": M.notes_per_second(notes, seconds),
                    "pitch_in_scale": M.pitch_in_scale_rate(notes),
                    "pc_entropy": M.pitch_class_entropy(notes),
                    "polyphony": M.polyphony(notes),
                    "empty_beats": M.empty_beat_rate(notes, bpm, duration=seconds),
                    "onsets_per_min": 60.0 * len(M.chord_onsets(notes)) / seconds,
                    **energy(notes, seconds),
                })
                if not align:
                    continue
                for kind, cuts in (("regular", regular_cuts(seconds)), ("irregular", irregular_cuts(seconds, seed))):
                    t = time.perf_counter()
                    notes = compose_notes(cfg, v, a, seconds, cuts, seed=seed)
                    gen_time += time.perf_counter() - t
                    music_s += seconds
                    invalid += len(M.invalid_notes(notes))
                    al = M.cut_alignment(notes, cuts, seconds, seed=seed)
                    alignment.append({"valence": v, "arousal": a, "seed": seed, "cuts": kind, "tempo": round(bpm, 1),
                                      "hit_rate": al["hit_rate"], "random_rate": al["random_rate"]})
    vs = [c["valence"] for c in cells]
    as_ = [c["arousal"] for c in cells]
    summary = {
        "generator": generator_name,
        "runs": len(cells) + len(alignment),
        "spearman_valence_key": float(spearmanr(vs, [c["key_score"] for c in cells]).statistic),
        "spearman_arousal_nps": float(spearmanr(as_, [c["notes_per_second"] for c in cells]).statistic),
        # what else a listener hears as energy: loudness, register, drums, note length (shorter = livelier)
        **{f"spearman_arousal_{k}": float(spearmanr(as_, [c[k] for c in cells]).statistic)
           for k in ("mean_velocity", "mean_pitch", "drums_per_second", "mean_note_length")},
        "pitch_in_scale": statistics.fmean(c["pitch_in_scale"] for c in cells),
        "invalid_notes": invalid,
        "realtime_factor": music_s / gen_time if gen_time > 0 else float("inf"),
    }
    for kind in ("regular", "irregular"):
        rows = [r for r in alignment if r["cuts"] == kind]
        if rows:
            summary[f"hit_rate_{kind}"] = statistics.fmean(r["hit_rate"] for r in rows)
            summary[f"random_rate_{kind}"] = statistics.fmean(r["random_rate"] for r in rows)
            summary[f"worst_random_rate_{kind}"] = max(r["random_rate"] for r in rows)
            summary[f"worst_hit_rate_{kind}"] = min(r["hit_rate"] for r in rows)
    return {"cells": cells, "alignment": alignment, "summary": summary}


def table(result: dict) -> str:
    """The per-cell means (over seeds) as a text table, then the summary."""
    cells = result["cells"]
    keys = sorted({(c["valence"], c["arousal"]) for c in cells})
    cols = ("key_score", "notes_per_second", "pitch_in_scale", "pc_entropy", "polyphony", "empty_beats", "onsets_per_min")
    al = {}
    for r in result["alignment"]:
        al.setdefault((r["valence"], r["arousal"]), []).append(r)
    head = f"{'val':>6} {'aro':>6} {'bpm':>5} " + " ".join(f"{c[:10]:>10}" for c in cols) + f" {'hit':>5} {'rand':>5}"
    lines = [head, "-" * len(head)]
    for k in keys:
        rows = [c for c in cells if (c["valence"], c["arousal"]) == k]
        vals = [statistics.fmean(r[c] for r in rows) for c in cols]
        a = al.get(k, [])
        hit = statistics.fmean(r["hit_rate"] for r in a) if a else float("nan")
        rnd = statistics.fmean(r["random_rate"] for r in a) if a else float("nan")
        lines.append(f"{k[0]:>6.2f} {k[1]:>6.2f} {rows[0]['tempo']:>5.0f} " + " ".join(f"{x:>10.3f}" for x in vals)
                     + f" {hit:>5.2f} {rnd:>5.2f}")
    lines += ["", energy_table(result), ""]
    for k, v in result["summary"].items():
        lines.append(f"{k:>26}: {v:.3f}" if isinstance(v, float) else f"{k:>26}: {v}")
    return "\n".join(lines)


def energy_table(result: dict) -> str:
    """Per arousal (means over valence and seeds): what a listener hears as energy, and the balance of the
    parts: notes of each part per piece, and its level (mean velocity) in brackets."""
    cells = result["cells"]
    head = (f"{'aro':>6} {'n/s':>6} {'vel':>6} {'pitch':>6} {'drum/s':>6} {'len s':>6}  "
            + " ".join(f"{p:>11}" for p in PARTS))
    lines = [head, "-" * len(head)]
    mean = lambda xs: statistics.fmean(xs) if xs else float("nan")  # noqa: E731
    for a in sorted({c["arousal"] for c in cells}):
        rows = [c for c in cells if c["arousal"] == a]
        m = {k: mean([r[k] for r in rows if r[k] == r[k]]) for k in rows[0]
             if isinstance(rows[0][k], (int, float))}
        parts = " ".join(f"{m[f'notes_{p}']:>5.0f} ({m[f'level_{p}']:>3.0f})" for p in PARTS)
        lines.append(f"{a:>6.2f} {m['notes_per_second']:>6.2f} {m['mean_velocity']:>6.1f} {m['mean_pitch']:>6.1f} "
                     f"{m['drums_per_second']:>6.2f} {m['mean_note_length']:>6.2f}  {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", default="arranger", help="backend name: arranger or transformer")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--grid", type=int, default=5, help="points per axis of the valence x arousal grid")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    p.add_argument("--config", default=None, help="preset name or TOML file")
    p.add_argument("--no-align", action="store_true", help="skip the runs with cut lists")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        p.error("--seeds must be comma-separated integers")
    if args.grid < 2 or args.seconds < 4:
        p.error("--grid must be >= 2 and --seconds >= 4")
    try:
        result = run(args.generator, args.seconds, args.grid, seeds, args.config, align=not args.no_align)
    except UserError as e:  # a missing checkpoint, a bad config: one line, not a traceback
        print(f"eval_generator: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("cuecast."):
            raise
        print(f"eval_generator: error: backend {args.generator!r} is not built yet ({e.name})", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
