"""Edits made by tools/make_edits.py as training rows, and the forecaster's metrics (pure functions).

An edit file holds one context row per tick (what the online forecaster knew then) and the detector's
cut times over the whole edit. The target of a row is the bin of the next cut it did not know about yet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cuecast.models.cuts.forecast import BIN_S, CI, HORIZON_S, HazardNet, bin_features, bin_taus, \
    constant_rate_hazard

RHYTHMIC = ("steady", "accelerating", "beat")


@dataclass
class Edit:
    name: str
    kind: str
    ctx: np.ndarray  # N x len(CTX)
    labels: np.ndarray  # detector cut times
    target: np.ndarray  # N: bin of the next unknown cut, n_bins when beyond the horizon
    offset: np.ndarray  # N: seconds from the row's tick to that cut (inf when there is none)


def split_of(k: int) -> str:
    """Held-out edits by number, in groups of four consecutive edits (one of each rhythm, as make_edits
    cycles through them): groups 8 and 9 of every 10 are validation and test."""
    return {8: "val", 9: "test"}.get((k // 4) % 10, "train")


def targets(ctx: np.ndarray, labels: np.ndarray, n_bins: int, bin_s: float = BIN_S) -> tuple[np.ndarray, np.ndarray]:
    t = ctx[:, CI["t"]]
    known = np.where(ctx[:, CI["n_shots"]] > 0, t - ctx[:, CI["tsl"]], -np.inf)  # newest cut the row knew
    labels = np.sort(labels)
    nxt = np.full(len(t), np.inf)
    for i in range(len(t)):
        later = labels[labels > known[i] + 0.2]
        if later.size:
            nxt[i] = later[0]
    off = nxt - t
    b = np.floor(np.clip(off, 0, None) / bin_s)
    b = np.where(np.isfinite(b), np.minimum(b, n_bins), n_bins).astype(np.int64)
    return b, off


def load_edits(folder: str | Path, split: str | None = None, n_bins: int | None = None) -> list[Edit]:
    n_bins = n_bins or int(round(HORIZON_S / BIN_S))
    out = []
    for p in sorted(Path(folder).glob("edit_*.npz")):
        if p.name.endswith(".tmp.npz"):
            continue
        k = int(p.stem.split("_")[1])
        if split is not None and split_of(k) != split:
            continue
        z = np.load(p)
        info = json.loads(str(z["info"]))
        tgt, off = targets(z["ctx"], z["labels"], n_bins)
        out.append(Edit(p.stem, info["kind"], z["ctx"].astype(np.float32), z["labels"], tgt, off))
    return out


@torch.no_grad()
def hazards(model: HazardNet, ctx: np.ndarray, taus: torch.Tensor, batch: int = 4096) -> np.ndarray:
    outs = []
    for i in range(0, len(ctx), batch):
        x = torch.from_numpy(ctx[i:i + batch]).to(taus.device)
        outs.append(torch.sigmoid(model(bin_features(x, taus))).cpu().numpy())
    return np.concatenate(outs).astype(np.float64)


def one_step_ll(h0: np.ndarray, target: np.ndarray) -> float:
    """Log-likelihood of the cuts as a discrete-time process, bin 0 of every tick (nats, summed)."""
    y = target == 0
    h0 = np.clip(h0, 1e-6, 1 - 1e-6)
    return float(np.sum(np.where(y, np.log(h0), np.log1p(-h0))))


def predicted_time(hazard: np.ndarray, t: float, bin_s: float) -> float:
    """Median of the next-cut distribution: where P(cut by then) first reaches 0.5 (inf if never)."""
    p = 1.0 - np.cumprod(1.0 - hazard)
    i = int(np.argmax(p >= 0.5)) if p[-1] >= 0.5 else -1
    return math.inf if i < 0 else t + (i + 0.5) * bin_s


def most_likely_time(hazard: np.ndarray, t: float, bin_s: float) -> float:
    """Centre of the single most likely bin for the next cut (as Forecast.most_likely)."""
    survive = np.concatenate([[1.0], np.cumprod(1.0 - hazard)[:-1]])
    return t + (int(np.argmax(survive * hazard)) + 0.5) * bin_s


def evaluate(model: HazardNet, edits: list[Edit], device: str = "cpu", ahead: float = 0.5,
             tol: float = 0.15) -> dict:
    """Log-likelihood per cut against the constant-rate baseline, and the rhythmic-edit hit rate: of the
    cuts that can be forecast `ahead` seconds before they happen (the previous cut was known by then),
    the share whose forecast made at that moment put the median within +-tol of the cut."""
    taus = torch.tensor(bin_taus(), dtype=torch.float32, device=device)
    n_bins = len(taus)
    ll_m = ll_b = 0.0
    n_cuts = 0
    hits = {k: [0, 0] for k in RHYTHMIC}
    hits_ml = {k: 0 for k in RHYTHMIC}  # the same with the single most likely bin as the forecast
    for e in edits:
        h = hazards(model, e.ctx, taus)
        hb = constant_rate_hazard(torch.from_numpy(e.ctx), n_bins).numpy()
        ll_m += one_step_ll(h[:, 0], e.target)
        ll_b += one_step_ll(hb[:, 0], e.target)
        n_cuts += int((e.target == 0).sum())
        if e.kind not in hits:
            continue
        t = e.ctx[:, CI["t"]]
        known = np.where(e.ctx[:, CI["n_shots"]] > 0, t - e.ctx[:, CI["tsl"]], -np.inf)
        for c in e.labels:
            rows = np.nonzero((t <= c - ahead + 1e-9) & (e.offset == e.offset) & (np.abs(t + e.offset - c) < 1e-6))[0]
            if rows.size == 0:
                continue  # the previous cut was not known 0.5 s before this one: not forecastable so far ahead
            i = rows[-1]
            if not np.isfinite(known[i]) and e.kind != "beat":
                continue  # the first cut of an edit has no rhythm to go by (a beat edit has its audio)
            hits[e.kind][1] += 1
            hits[e.kind][0] += int(abs(predicted_time(h[i], t[i], BIN_S) - c) <= tol)
            hits_ml[e.kind] += int(abs(most_likely_time(h[i], t[i], BIN_S) - c) <= tol)
    tot = [sum(v[0] for v in hits.values()), sum(v[1] for v in hits.values())]
    return {
        "cuts": n_cuts,
        "ll_per_cut": ll_m / max(1, n_cuts),
        "ll_per_cut_baseline": ll_b / max(1, n_cuts),
        "rhythmic_hit_rate": tot[0] / max(1, tot[1]),
        "rhythmic_cuts": tot[1],
        "rhythmic_hit_rate_most_likely": sum(hits_ml.values()) / max(1, tot[1]),
        **{f"hit_{k}": v[0] / max(1, v[1]) for k, v in hits.items()},
    }
