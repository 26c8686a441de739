"""Evaluate the cut forecaster on held-out edits against a constant-rate baseline.

    python tools/eval_cuts.py --data /tmp/cuecast/edits [--weights models/weights/cut_forecast.pt]

Held-out edits are the "test" split of tools/make_edits.py's numbering (edits 36-39, 76-79, ...: see
forecast_data.split_of), never seen in training or model selection. Reported:
- log-likelihood per cut (nats) of the cuts as a discrete-time process (bin 0 of every tick), for the
  model and for a Poisson process at the rate seen so far (the constant-rate baseline); higher is better;
- on rhythmic edits (steady, accelerating, beat grid): the share of cuts for which the forecast made
  0.5 s before the cut put the median of the next-cut time within +-150 ms of it (cuts whose previous
  cut was not yet known 0.5 s before are not forecastable that far ahead and are left out; the first cut
  of a non-beat edit has no rhythm yet and is left out too).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from cuecast.models.cuts.config import CutConfig
from cuecast.models.cuts.forecast import load_forecaster
from cuecast.models.cuts.forecast_data import evaluate, load_edits


def run(data: str, weights: str = "", split: str = "test") -> dict:
    torch.set_num_threads(1)
    fc = load_forecaster(CutConfig(device="cpu", forecast_weights=weights))
    edits = load_edits(data, split)
    if not edits:
        raise SystemExit(f"eval_cuts: no {split} edits in {data} (run tools/make_edits.py)")
    m = evaluate(fc.model, edits)
    m["edits"] = len(edits)
    m["by_kind"] = {k: sum(e.kind == k for e in edits) for k in ("steady", "accelerating", "beat", "random")}
    return m


def markdown(m: dict) -> str:
    ml = "most likely bin"
    return "\n".join([
        "### Cut forecast, held-out edits (tools/eval_cuts.py)", "",
        f"{m['edits']} edits ({', '.join(f'{v} {k}' for k, v in m['by_kind'].items())}), {m['cuts']} cuts", "",
        "| metric | forecaster | constant-rate baseline |", "|---|---:|---:|",
        f"| log-likelihood per cut (nats) | {m['ll_per_cut']:.3f} | {m['ll_per_cut_baseline']:.3f} |",
        f"| rhythmic cuts forecast 0.5 s ahead within +-150 ms (median) | {m['rhythmic_hit_rate']:.1%} "
        f"({m['rhythmic_cuts']} cuts) | |",
        f"| ... same, with the {ml} as the forecast (what the conductor uses) | "
        f"{m['rhythmic_hit_rate_most_likely']:.1%} | |",
        *[f"| ... {k} (median / {ml}) | {m[f'hit_{k}']:.1%} / {m[f'hit_{k}_most_likely']:.1%} "
          f"({m[f'cuts_{k}']} cuts) | |" for k in ("steady", "accelerating", "beat")],
        *[f"| ... beat grid, {k} beats per shot (median / {ml}) | {m[f'hit_beat_{k}']:.1%} / "
          f"{m[f'hit_beat_{k}_most_likely']:.1%} ({m[f'cuts_beat_{k}']} cuts) | |" for k in ("fixed", "varied")],
        f"| long takes (shot > 1.5x the recent median, {m['long_take_ticks']} ticks): P(cut within 1 s) "
        f"forecast / observed | {m['long_take_p_cut_1s']:.1%} / {m['long_take_cut_1s_observed']:.1%} | |",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of edits from tools/make_edits.py")
    ap.add_argument("--weights", default="", help="forecaster weights (default: the shipped ones)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                    help="which edits of DATA by number (all: every edit, for a folder made only for testing)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    m = run(args.data, args.weights, args.split)
    print(json.dumps(m, indent=1) if args.json else markdown(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
