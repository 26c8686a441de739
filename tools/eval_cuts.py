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
    return "\n".join([
        "### Cut forecast, held-out edits (tools/eval_cuts.py)", "",
        f"{m['edits']} edits ({', '.join(f'{v} {k}' for k, v in m['by_kind'].items())}), {m['cuts']} cuts", "",
        "| metric | forecaster | constant-rate baseline |", "|---|---:|---:|",
        f"| log-likelihood per cut (nats) | {m['ll_per_cut']:.3f} | {m['ll_per_cut_baseline']:.3f} |",
        f"| rhythmic cuts forecast 0.5 s ahead within +-150 ms | {m['rhythmic_hit_rate']:.1%} ({m['rhythmic_cuts']} cuts) | |",
        f"| ... same, with the most likely bin as the forecast | {m['rhythmic_hit_rate_most_likely']:.1%} | |",
        f"| ... steady | {m['hit_steady']:.1%} | |",
        f"| ... accelerating | {m['hit_accelerating']:.1%} | |",
        f"| ... beat grid | {m['hit_beat']:.1%} | |",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of edits from tools/make_edits.py")
    ap.add_argument("--weights", default="", help="forecaster weights (default: the shipped ones)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    m = run(args.data, args.weights, args.split)
    print(json.dumps(m, indent=1) if args.json else markdown(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
