"""Train the cut forecaster on edits made by tools/make_edits.py.

    nohup nice -n 10 python tools/train_cut_forecast.py --data /tmp/cuecast/edits \
        --out models/weights/cut_forecast.pt --minutes 20 > train.log 2>&1 &

Checkpoints (model, optimiser, step) go to --ckpt every --ckpt-minutes and the run resumes from there;
the best model on the validation edits is written to --out with what it scored. A CSV log of every
evaluation goes to --log.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cuecast.models.cuts.forecast import BIN_S, HORIZON_S, N_FEATURES, HazardNet, bin_features, bin_taus, \
    survival_nll
from cuecast.models.cuts.forecast_data import evaluate, load_edits


def batches(feats: torch.Tensor, tgt: np.ndarray, size: int, rng: np.random.Generator):
    idx = torch.from_numpy(rng.permutation(len(feats)))
    for i in range(0, len(idx), size):
        j = idx[i:i + size]
        yield feats[j], torch.from_numpy(tgt[j.numpy()])


def all_features(ctx: np.ndarray, taus: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """bin_features of every training row, once: a step then costs only the MLP (rows x bins x features
    floats; 150k rows are under 1 GB)."""
    return torch.cat([bin_features(torch.from_numpy(ctx[i:i + chunk]), taus) for i in range(0, len(ctx), chunk)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of edit_*.npz from tools/make_edits.py")
    ap.add_argument("--out", default="models/weights/cut_forecast.pt")
    ap.add_argument("--ckpt", default=None, help="checkpoint for resuming (default: OUT with .ckpt)")
    ap.add_argument("--log", default="models/weights/cut_forecast_train_log.csv")
    ap.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    ap.add_argument("--eval-every", type=int, default=500, help="steps between validations")
    ap.add_argument("--ckpt-minutes", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay")
    ap.add_argument("--decay", action="store_true",
                    help="lower the learning rate linearly to a tenth over the time budget (steadier end)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, val = load_edits(args.data, "train"), load_edits(args.data, "val")
    if not train or not val:
        print(f"train_cut_forecast: need train and val edits in {args.data} (run tools/make_edits.py)", file=sys.stderr)
        return 2
    ctx = np.concatenate([e.ctx for e in train])
    tgt = np.concatenate([e.target for e in train])
    print(f"{len(train)} train edits ({len(ctx)} ticks, {(tgt == 0).sum()} cuts), {len(val)} val edits", flush=True)
    taus = torch.tensor(bin_taus(), dtype=torch.float32)
    feats = all_features(ctx, taus)
    model = HazardNet(N_FEATURES, args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    ckpt = Path(args.ckpt or str(Path(args.out).with_suffix(".ckpt")))
    step, best = 0, -float("inf")
    if ckpt.exists():
        ck = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best = ck["step"], ck["best"]
        rng = np.random.default_rng(args.seed + step)
        print(f"resumed from {ckpt} at step {step}", flush=True)
    log_new = not Path(args.log).exists()
    logf = open(args.log, "a", newline="")
    log = csv.writer(logf)
    if log_new:
        log.writerow(["step", "seconds", "train_nll", "val_ll_per_cut", "val_ll_per_cut_baseline",
                      "val_rhythmic_hit_rate", "val_hit_steady", "val_hit_accelerating", "val_hit_beat"])
    t0 = last_ck = time.time()
    deadline = t0 + args.minutes * 60
    run_loss, n_loss = 0.0, 0
    while time.time() < deadline:
        for x, y in batches(feats, tgt, args.batch, rng):
            model.train()
            if args.decay:
                for grp in opt.param_groups:
                    grp["lr"] = args.lr * (1.0 - 0.9 * min(1.0, (time.time() - t0) / (deadline - t0)))
            loss = survival_nll(model(x), y).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            run_loss, n_loss = run_loss + loss.item(), n_loss + 1
            if step % args.eval_every == 0:
                model.eval()
                m = evaluate(model, val)
                log.writerow([step, round(time.time() - t0, 1), round(run_loss / n_loss, 4), round(m["ll_per_cut"], 4),
                              round(m["ll_per_cut_baseline"], 4), round(m["rhythmic_hit_rate"], 4),
                              round(m["hit_steady"], 4), round(m["hit_accelerating"], 4), round(m["hit_beat"], 4)])
                logf.flush()
                print(f"step {step} train {run_loss / n_loss:.4f} val ll/cut {m['ll_per_cut']:.3f} "
                      f"(baseline {m['ll_per_cut_baseline']:.3f}) hit {m['rhythmic_hit_rate']:.3f}", flush=True)
                run_loss, n_loss = 0.0, 0
                score = m["ll_per_cut"]
                if score > best:
                    best = score
                    save(model, args, m, step, Path(args.out))
            if time.time() - last_ck > args.ckpt_minutes * 60:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best}, ckpt)
                last_ck = time.time()
            if time.time() >= deadline:
                break
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best}, ckpt)
    print(f"done at step {step}; best val ll/cut {best:.4f}; weights in {args.out}", flush=True)
    return 0


def save(model: HazardNet, args, metrics: dict, step: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "n_features": N_FEATURES, "hidden": args.hidden, "bin_s": BIN_S,
                "horizon": HORIZON_S, "step": step, "val": json.dumps(metrics)}, tmp)
    tmp.rename(out)


if __name__ == "__main__":
    sys.exit(main())
