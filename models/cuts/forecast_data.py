"""Edits made by tools/make_edits.py as training rows, and the forecaster's metrics (pure functions).

An edit file holds one context row per tick (what the online forecaster knew then) and the detector's
cut times over the whole edit. The target of a row is the bin of the next cut it did not know about yet.
Edits that also carry the signals behind the rows (motion, the onset envelope, when each cut was decided)
get their rows rebuilt by the current ContextTracker (replay, cached), so a changed context layout needs
no new edits.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cuecast.models.cuts.forecast import BIN_S, CI, CONTEXT_VERSION, CTX, HORIZON_S, N_SHOTS, ContextTracker, \
    HazardNet, bin_features, bin_taus, constant_rate_hazard
from cuecast.types import Boundary

RHYTHMIC = ("steady", "accelerating", "beat")


@dataclass
class Edit:
    name: str
    kind: str
    ctx: np.ndarray  # N x len(CTX)
    labels: np.ndarray  # detector cut times
    target: np.ndarray  # N: bin of the next unknown cut, n_bins when beyond the horizon
    offset: np.ndarray  # N: seconds from the row's tick to that cut (inf when there is none)
    info: dict | None = None  # what make_edits drew (rhythm parameters)


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


def replay(z) -> np.ndarray:
    """The context rows of a recorded edit, rebuilt by the current ContextTracker from the signals
    make_edits recorded (motion and onset envelope per tick, cuts with the time they were decided): the
    same code as at run time, fed the same inputs in the same order."""
    ctx = ContextTracker()
    ctx.t0 = 0.0
    hop_s = ctx.audio.hop / ctx.audio.rate
    values, counts, t_ends = z["env_values"], z["sig_env_count"].astype(int), z["sig_env_t_end"]
    order = np.argsort(z["label_decided"], kind="stable")
    cuts, decided = z["labels"][order], z["label_decided"][order]
    rows, n_env, n_cut = [], 0, 0
    for k, t in enumerate(z["sig_t"]):
        for i in range(n_env, counts[k]):
            ctx.audio.push(float(values[i]), float(t_ends[k] - (counts[k] - 1 - i) * hop_s))
        n_env = counts[k]
        ctx.has_audio = bool(z["sig_has_audio"][k])
        ctx.motion = float(z["sig_motion"][k])
        while n_cut < len(cuts) and decided[n_cut] <= t + 1e-9:
            ctx.add_cuts([Boundary(t=float(cuts[n_cut]), kind="hard")])
            n_cut += 1
        rows.append(ctx.row(float(t)))
    return np.stack(rows)


def load_edits(folder: str | Path, split: str | None = None, n_bins: int | None = None) -> list[Edit]:
    n_bins = n_bins or int(round(HORIZON_S / BIN_S))
    out = []
    for p in sorted(Path(folder).glob("edit_*.npz")):
        if p.name.endswith(".tmp.npz"):
            continue
        k = int(p.stem.split("_")[1])
        if split not in (None, "all") and split_of(k) != split:
            continue
        z = np.load(p)
        info = json.loads(str(z["info"]))
        ctx = rebuilt(p, z) if "sig_t" in z else z["ctx"]
        tgt, off = targets(ctx, z["labels"], n_bins)
        out.append(Edit(p.stem, info["kind"], ctx.astype(np.float32), z["labels"], tgt, off, info))
    return out


def rebuilt(path: Path, z) -> np.ndarray:
    """replay(z), cached next to the edit, keyed on the context layout and CONTEXT_VERSION."""
    key = hashlib.sha1(",".join([*CTX, str(CONTEXT_VERSION)]).encode()).hexdigest()[:8]
    cache = path.with_name(f"{path.stem}.ctx-{key}.npy")
    if cache.exists():
        return np.load(cache)
    rows = replay(z)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")  # two trainings may fill the cache at once
    np.save(tmp, rows)
    tmp.replace(cache)
    return rows


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
    beat_hits = {"fixed": [0, 0, 0], "varied": [0, 0, 0]}  # median hits, cuts, most-likely-bin hits
    long_pred = long_obs = n_long = 0
    for e in edits:
        h = hazards(model, e.ctx, taus)
        hb = constant_rate_hazard(torch.from_numpy(e.ctx), n_bins).numpy()
        ll_m += one_step_ll(h[:, 0], e.target)
        ll_b += one_step_ll(hb[:, 0], e.target)
        long = long_takes(e.ctx)  # calibration where the take has outlasted the recent shots
        p1 = 1.0 - np.prod(1.0 - h[long, :10], axis=1)
        long_pred, long_obs, n_long = long_pred + p1.sum(), long_obs + (e.target[long] < 10).sum(), n_long + long.sum()
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
            hit = int(abs(predicted_time(h[i], t[i], BIN_S) - c) <= tol)
            hit_ml = int(abs(most_likely_time(h[i], t[i], BIN_S) - c) <= tol)
            hits[e.kind][1] += 1
            hits[e.kind][0] += hit
            hits_ml[e.kind] += hit_ml
            if e.kind == "beat":  # a fixed number of beats per shot, or a varying one (the hard case)
                sub = beat_hits["fixed" if (e.info or {}).get("pattern") else "varied"]
                sub[0], sub[1], sub[2] = sub[0] + hit, sub[1] + 1, sub[2] + hit_ml
    tot = [sum(v[0] for v in hits.values()), sum(v[1] for v in hits.values())]
    return {
        "cuts": n_cuts,
        "ll_per_cut": ll_m / max(1, n_cuts),
        "ll_per_cut_baseline": ll_b / max(1, n_cuts),
        "rhythmic_hit_rate": tot[0] / max(1, tot[1]),
        "rhythmic_cuts": tot[1],
        "rhythmic_hit_rate_most_likely": sum(hits_ml.values()) / max(1, tot[1]),
        **{f"hit_{k}": v[0] / max(1, v[1]) for k, v in hits.items()},
        **{f"cuts_{k}": v[1] for k, v in hits.items()},
        **{f"hit_{k}_most_likely": hits_ml[k] / max(1, v[1]) for k, v in hits.items()},
        **{f"hit_beat_{k}": v[0] / max(1, v[1]) for k, v in beat_hits.items()},
        **{f"hit_beat_{k}_most_likely": v[2] / max(1, v[1]) for k, v in beat_hits.items()},
        **{f"cuts_beat_{k}": v[1] for k, v in beat_hits.items()},
        "long_take_ticks": int(n_long),
        "long_take_p_cut_1s": float(long_pred / max(1, n_long)),
        "long_take_cut_1s_observed": float(long_obs / max(1, n_long)),
    }


def long_takes(ctx: np.ndarray, factor: float = 1.5) -> np.ndarray:
    """Ticks whose current shot is already `factor` times longer than the median of the recent shots."""
    lens = ctx[:, CI["len0"]: CI["len0"] + N_SHOTS]
    med = np.array([np.median(r[r > 0]) if (r > 0).sum() >= 2 else np.inf for r in lens])
    return ctx[:, CI["tsl"]] > factor * med
