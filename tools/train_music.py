"""Train the music transformer on the corpus of tools/build_corpus.py, on CPU, within a time budget.

Checkpoints every few minutes (started again with the same arguments, it resumes from OUT/ckpt.pt, the
learning-rate schedule where it was), logs the training curve to OUT/train_log.csv, keeps the best held-out
checkpoint in OUT/best.pt and a snapshot every half hour (OUT/step_N.pt). Which one ships is decided by
tools/eval_music.py's checks and copied by hand (see models/weights/MUSIC_MODEL_CARD.md).

    nohup nice -n 5 python tools/train_music.py --data data/music --out runs/music --minutes 240 \
        --init models/weights/music_transformer.pt --context 384 --d-model 192 > runs/music/train.log 2>&1 &
    python tools/train_music.py --bench            # tokens/s of a few sizes and thread counts
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cuecast.models.music import model as M
from cuecast.models.music import tokens as T
from cuecast.models.music import windows as W
from cuecast.models.music.corpus import quantile_table, to_unit

# parameters that read the conditions: a faster learning rate, no weight decay (see start_model)
COND_PATHS = ("val.", "aro.", "off.", "cond_layers.", "key_prior.", "scale_prior")


class Batches:
    """Training windows (models/music/windows.py) with per-token conditions that lead the music.

    Every window is drawn from the corpus (by source share with `source_weights`), `p_bos` of them from a
    piece's first token (a fresh start, as generation has: nothing but the conditions tells the mode and
    the density of the first bars, so that is where the model learns to take them from there); with probability
    `p_split` it changes at a bar line inside it: the rest comes from another piece (`p_splice` of those) or
    from the same one, each part moved to its parallel mode with probability `mode_flip` and louder or softer
    by a few velocity levels; the join is a boundary (offsets to it, a swell before, an accent after). Labels
    are measured on each part and ranked over windows drawn the same way (tables estimated at start).
    """

    def __init__(self, path: Path, context: int, seed: int, mode_flip: float = 0.5,
                 source_weights: dict[str, float] | None = None, p_split: float = 0.6, p_splice: float = 0.5,
                 vel_spread: int = 2, p_bos: float = 0.3):
        z = np.load(path / "corpus.npz")
        self.tokens = z["tokens"].astype(np.int64)
        self.sec = z["sec"].astype(np.float64)
        self.offset = z["offset"].astype(np.float64)
        self.n_train = int(z["n_train"])
        self.context = context
        self.rng = np.random.default_rng(seed)
        if self.n_train <= 3 * context or len(self.tokens) - self.n_train <= 3 * context:
            raise SystemExit("train_music: corpus too small for the context; build a bigger one")
        self.tabs = W.transpose_tables()
        self.mode_tabs = W.parallel_mode_tables()
        self.mode_flip, self.p_split, self.p_splice, self.vel_spread = mode_flip, p_split, p_splice, vel_spread
        self.p_bos = p_bos
        self.start_cdf = self._start_cdf(path, source_weights) if source_weights else None
        self.bars = np.flatnonzero(self.tokens == T.BAR)
        self.bos = np.flatnonzero(self.tokens == T.BOS)
        self.val_table, self.aro_table = self._label_tables(np.random.default_rng(seed + 7))

    def _start_cdf(self, path: Path, weights: dict[str, float]) -> np.ndarray:
        """CDF over training start positions that gives each source its weight's share of the windows.

        The sources differ in kind (dense multi-track game music, sparse one-voice folk tunes, grooves in
        between); drawn by token count the largest decides what a fresh start sounds like."""
        pieces = [m for m in json.loads((path / "pieces.json").read_text()) if m["split"] == "train"]
        src = np.zeros(self.n_train, dtype=np.int64)
        names = sorted({m["source"].split("/")[0] for m in pieces})
        for m in pieces:
            src[m["start"]:m["start"] + m["length"]] = names.index(m["source"].split("/")[0])
        src = src[: self.n_train - 3 * self.context]
        counts = np.bincount(src, minlength=len(names)).astype(float)
        w = np.array([weights.get(n, 0.0) for n in names]) / np.maximum(counts, 1)
        if not w.any():
            raise SystemExit(f"train_music: --source-weights names none of the corpus's sources {names}")
        print("train_music: window share by source " + ", ".join(
            f"{n} {x:.2f}" for n, x in zip(names, w * counts / (w * counts).sum())), flush=True)
        cdf = np.cumsum(w[src])
        return cdf / cdf[-1]

    def _start(self, rng, heldout: bool, at_piece_start: bool = False) -> int:
        lo, hi = (self.n_train, len(self.tokens) - 3 * self.context) if heldout else (0, self.n_train - 3 * self.context)
        if at_piece_start:  # right after a BOS, as generation starts: only the conditions say what to play
            bos = self.bos[(self.bos >= lo) & (self.bos < hi)]
            if self.start_cdf is not None and not heldout:  # the piece of a position drawn by source share
                near = bos[np.clip(np.searchsorted(bos, np.searchsorted(self.start_cdf, rng.random()), side="right") - 1, 0, len(bos) - 1)]
                return int(near) + 1
            return int(rng.choice(bos)) + 1
        if self.start_cdf is not None and not heldout:
            return int(np.searchsorted(self.start_cdf, rng.random()))
        return int(rng.integers(lo, hi))

    def _part(self, a: int, b: int, rng, plain: bool) -> W.Part:
        flip = (not plain) and rng.random() < self.mode_flip
        delta = 0 if plain else int(rng.integers(-self.vel_spread, self.vel_spread + 1))
        return W.Part(self.tokens[a:b], self.sec[a:b], self.offset[a:b], W.level_before(self.tokens, a), flip, delta)

    def _next_bar(self, i: int, lo: int, hi: int) -> int | None:
        j = np.searchsorted(self.bars, i + lo)
        return int(self.bars[j]) if j < len(self.bars) and self.bars[j] < i + hi else None

    def window(self, rng, heldout: bool = False, plain: bool = False) -> W.Window:
        """One window of context+1 tokens (plain: as in the corpus, for comparable held-out losses)."""
        n, slack = self.context + 1, self.context // 2
        a = self._start(rng, heldout, at_piece_start=not plain and rng.random() < self.p_bos)
        split = None if plain or rng.random() >= self.p_split else self._next_bar(a, n // 4, 3 * n // 4)
        fresh = not plain and a > 0 and self.tokens[a - 1] == T.BOS
        if split is None:
            return W.build([self._part(a, a + n + slack, rng, plain)], n, self.mode_tabs, boundary=False, fresh=fresh)
        if rng.random() < self.p_splice:
            b0 = self._start(rng, heldout)
            b = self._next_bar(b0, 0, n) or b0
        else:
            b = split
        parts = [self._part(a, split, rng, False), self._part(b, b + n + slack, rng, False)]
        return W.build(parts, n, self.mode_tabs, boundary=True, fresh=fresh)

    def _label_tables(self, rng, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
        """Quantiles of the raw labels over windows drawn as in training (their rank is the [-1, 1] label)."""
        vals, aros = [], []
        for _ in range(n):
            w = self.window(rng)
            for x, out in ((w.valence_raw, vals), (w.arousal_raw, aros)):
                x = x[~np.isnan(x)]
                out.extend(np.unique(x))
        return quantile_table(np.array(vals)), quantile_table(np.array(aros))

    def batch(self, batch: int, rng, heldout: bool = False, plain: bool = False):
        ws = [self.window(rng, heldout, plain) for _ in range(batch)]
        toks = np.stack([w.tokens for w in ws])
        cond = np.stack([np.stack([to_unit(w.valence_raw, self.val_table), to_unit(w.arousal_raw, self.aro_table),
                                   w.offset], axis=1) for w in ws]).astype(np.float32)
        cond[:, :, :2][np.isnan(np.stack([np.stack([w.valence_raw, w.arousal_raw], 1) for w in ws]))] = np.nan
        if not heldout:
            shift = rng.integers(-5, 7, size=batch)
            toks = np.stack([self.tabs[s + 6, t] for s, t in zip(shift, toks)])
        return toks, cond

    def train(self, batch: int, p_drop: tuple[float, float, float] = (0.15, 0.15, 0.1), p_drop_emotion: float = 0.1):
        toks, cond = self.batch(batch, self.rng)
        for c, p in enumerate(p_drop):  # condition dropout, per sequence: the missing vectors
            cond[self.rng.random(batch) < p, :, c] = np.nan
        # both emotions missing together: the unconditional model classifier-free guidance compares with
        cond[self.rng.random(batch) < p_drop_emotion, :, :2] = np.nan
        return self._tensors(toks, cond)

    def heldout(self, batch: int, n_batches: int, seed: int = 1234, plain: bool = False):
        rng = np.random.default_rng(seed)
        return [self._tensors(*self.batch(batch, rng, heldout=True, plain=plain)) for _ in range(n_batches)]

    @staticmethod
    def _tensors(toks: np.ndarray, cond: np.ndarray):
        t = torch.from_numpy(toks)
        c = torch.from_numpy(cond)
        return t[:, :-1], t[:, 1:], c[:, :-1, 0], c[:, :-1, 1], c[:, :-1, 2]


def lr_at(frac: float, base: float, warm_frac: float = 0.03) -> float:
    """Linear warm-up then cosine decay to a tenth, over the fraction of the time budget used."""
    if frac < warm_frac:
        return base * max(frac / warm_frac, 0.02)
    f = min(1.0, (frac - warm_frac) / (1 - warm_frac))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))


@torch.no_grad()
def evaluate(model: M.MusicTransformer, batches, drop_emotion: bool = False, opposite: bool = False) -> float:
    """Mean loss; with drop_emotion, valence and arousal given as missing, with opposite, negated (the
    gaps to the true-condition loss say how much the model uses them)."""
    model.eval()
    nan = lambda c: torch.full_like(c, math.nan) if drop_emotion else (-c if opposite else c)  # noqa: E731
    losses = [float(model(x, nan(v), nan(a), o, targets=y)[1]) for x, y, v, a, o in batches]
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def key_mode_accuracy(model: M.MusicTransformer, batches) -> float:
    """Share of held-out key tokens whose mode (major / minor) the model gives more than half its key
    probability: whether it chooses the mode from the valence (NaN when the batches hold no key token)."""
    model.eval()
    hits, n = 0, 0
    for x, y, v, a, o in batches:
        at = (y >= T.KEY0) & (y < T.KEY0 + T.N_KEYS)
        if not at.any():
            continue
        probs = torch.softmax(model(x, v, a, o)[0][at][:, T.KEY0:T.KEY0 + T.N_KEYS], dim=-1)
        minor = probs[:, 12:].sum(1) > 0.5
        hits += int((minor == (y[at] >= T.KEY0 + 12)).sum())
        n += int(at.sum())
    model.train()
    return hits / n if n else math.nan


def key_weighted_nll(logits: torch.Tensor, targets: torch.Tensor, key_weight: float,
                     extra: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token loss with the key tokens counted `key_weight` times: a section's key is one token in
    hundreds, yet it decides the mode of everything after it, which is what valence must move.
    `extra` (B, L) multiplies further per-target weights in."""
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=T.PAD, reduction="none")
    w = (targets != T.PAD).float() * torch.where(targets >= T.KEY0, key_weight, 1.0)
    if extra is not None:
        w = w * extra
    return (nll * w).sum() / w.sum().clamp(min=1.0)


def after_key_weights(x: torch.Tensor, targets: torch.Tensor, span: int, weight: float) -> torch.Tensor:
    """Per-target weight (B, L): pitched note-ons within `span` tokens after a key token count `weight` times.

    Deep in a section the notes' own context tells the model the key; right after a key token, at a fresh
    start or a new section, that one token is all it has. Those are the notes a listener hears change mode
    when the picture turns, so they are the ones that must learn to follow it."""
    idx = torch.arange(x.shape[1], device=x.device).expand_as(x)
    last_key = torch.where(x >= T.KEY0, idx, torch.full_like(idx, -(10 ** 9))).cummax(dim=1).values
    pitched_on = torch.from_numpy(T.PITCHED_ON).to(targets.device)[targets]
    near = (idx - last_key) < span
    return torch.where(pitched_on & near, weight, 1.0)


def sequence_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of each sequence (B,)."""
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=T.PAD, reduction="none")
    return nll.sum(1) / (targets != T.PAD).sum(1).clamp(min=1)


def condition_contrast(model: M.MusicTransformer, x, y, v, ar, o, nll_true: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge on how much worse the music is explained under the opposite emotion than under its own.

    Likelihood alone lets a small model read mode and texture off its context and ignore the labels
    (teacher-forced, swapping them cost 0.02 nats); this asks that swapping them cost at least `margin`
    nats per token, so the labels must carry what the music after a change or a fresh start will be.
    Sequences whose emotion was dropped (the unconditional model) are left out."""
    has = ~(v.isnan().all(1) & ar.isnan().all(1))
    if not has.any():
        return nll_true.new_zeros(())
    logits, _ = model(x[has], -v[has], -ar[has], o[has])
    nll_opp = sequence_nll(logits, y[has])
    return F.relu(margin - (nll_opp - nll_true[has])).mean()


def bench(args) -> None:
    """tokens/s of a training step for a few sizes and thread counts."""
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for nl, d in ((4, 256), (6, 256), (4, 192)):
            cfg = M.ModelConfig(n_layer=nl, d_model=d, n_head=4, context=args.context)
            m = M.MusicTransformer(cfg)
            opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
            x = torch.randint(4, T.VOCAB_SIZE, (args.batch, args.context))
            c = torch.rand(args.batch, args.context)
            for i in range(4):
                if i == 1:
                    t0 = time.time()
                _, loss = m(x, c, c, c, targets=x)
                opt.zero_grad()
                loss.backward()
                opt.step()
            dt = (time.time() - t0) / 3
            print(f"threads={threads} layers={nl} d={d} params={m.n_params()/1e6:.2f}M  "
                  f"{dt:.2f} s/step  {args.batch*args.context/dt:.0f} tok/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/music")
    ap.add_argument("--out", default="runs/music")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=90.0, help="training time budget (the lr schedule spans it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0, help="resumable checkpoint OUT/ckpt.pt this often")
    ap.add_argument("--eval-minutes", type=float, default=5.0)
    ap.add_argument("--snapshot-minutes", type=float, default=30.0,
                    help="also keep OUT/step_N.pt this often (held-out loss alone does not pick the best music)")
    ap.add_argument("--mode-flip", type=float, default=0.5, help="chance that a window part moves to its parallel mode")
    ap.add_argument("--p-split", type=float, default=0.6, help="chance that a window changes at a bar inside it")
    ap.add_argument("--p-splice", type=float, default=0.5, help="chance that the change is to another piece")
    ap.add_argument("--cond-lr-mult", type=float, default=5.0, help="learning rate of the condition paths, times --lr")
    ap.add_argument("--contrast", type=float, default=0.0,
                    help="weight of the condition-contrast hinge (0: off): the opposite emotion must explain the "
                    "music worse by --contrast-margin nats per token")
    ap.add_argument("--contrast-margin", type=float, default=0.05)
    ap.add_argument("--key-weight", type=float, default=1.0,
                    help="count each key token's loss this many times (the key decides the mode of a whole section)")
    ap.add_argument("--after-key-weight", type=float, default=1.0,
                    help="pitched note-ons right after a key token count this many times (they must follow it)")
    ap.add_argument("--after-key-span", type=int, default=96, help="tokens after a key token that --after-key-weight covers")
    ap.add_argument("--p-bos", type=float, default=0.3, help="share of windows that start a piece (a fresh start)")
    ap.add_argument("--vel-spread", type=int, default=2, help="a part's velocities move up to this many levels")
    ap.add_argument("--source-weights", default="",
                    help="share of training windows per source, e.g. debian=0.4,mma=0.35,music21=0.25 (default: by tokens)")
    ap.add_argument("--init", default="", help="weights to start from (fine-tuning; new layers start at zero); "
                                               "ignored when resuming")
    ap.add_argument("--redraw-valence", action="store_true",
                    help="with --init: restart the valence path as random features (see redraw_condition_path)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args(argv)
    if a.bench:
        bench(a)
        return 0
    torch.set_num_threads(a.threads)  # a training process of its own: its threads are its business
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        weights = {k: float(v) for k, v in (x.split("=") for x in a.source_weights.split(",") if x.strip())}
    except ValueError:
        ap.error("--source-weights must look like debian=0.4,mma=0.35,music21=0.25")
    data = Batches(Path(a.data), a.context, a.seed, mode_flip=a.mode_flip, source_weights=weights,
                   p_split=a.p_split, p_splice=a.p_splice, vel_spread=a.vel_spread, p_bos=a.p_bos)
    held = data.heldout(a.batch, 8)
    held_plain = data.heldout(a.batch, 8, plain=True)
    tables = {"valence_table": data.val_table.tolist(), "arousal_table": data.aro_table.tolist()}
    model, opt, step, elapsed, best, seen = start_model(a, out / "ckpt.pt")
    data.rng = np.random.default_rng(a.seed + step)
    print(f"train_music: {model.n_params()/1e6:.2f}M params, {data.n_train} train tokens, "
          f"{len(data.tokens) - data.n_train} held-out", flush=True)
    log_path = out / "train_log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    w = csv.writer(log)
    if new_log:
        w.writerow(["step", "minutes", "tokens_seen", "train_loss", "heldout_loss", "heldout_no_emotion",
                    "heldout_plain", "lr", "heldout_opposite", "heldout_key_mode"])
    model.train()
    t_start = time.time() - elapsed
    last_ck = last_eval = last_snap = time.time()
    run_loss, run_n = 0.0, 0
    while True:
        elapsed = time.time() - t_start
        frac = elapsed / (a.minutes * 60)
        if frac >= 1.0:
            break
        lr = lr_at(frac, a.lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["mult"]
        x, y, v, ar, o = data.train(a.batch)
        logits, loss = model(x, v, ar, o, targets=y)
        nll_value = loss.item()  # the curve logs the likelihood alone
        if a.key_weight != 1.0 or a.after_key_weight != 1.0:
            extra = after_key_weights(x, y, a.after_key_span, a.after_key_weight) if a.after_key_weight != 1.0 else None
            loss = key_weighted_nll(logits, y, a.key_weight, extra)
        if a.contrast > 0:
            k = max(1, a.batch // 2)  # on half the batch: the second pass costs half a step
            nll = sequence_nll(logits[:k], y[:k])
            loss = loss + a.contrast * condition_contrast(model, x[:k], y[:k], v[:k], ar[:k], o[:k], nll, a.contrast_margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        run_loss, run_n = run_loss + nll_value, run_n + 1
        now = time.time()
        if now - last_eval >= a.eval_minutes * 60 or step == 1:
            hl, hn, hp = evaluate(model, held), evaluate(model, held, drop_emotion=True), evaluate(model, held_plain)
            ho, km = evaluate(model, held, opposite=True), key_mode_accuracy(model, held)
            w.writerow([step, round(elapsed / 60, 2), seen, round(run_loss / run_n, 4), round(hl, 4), round(hn, 4),
                        round(hp, 4), f"{lr:.2e}", round(ho, 4), round(km, 3)])
            log.flush()
            print(f"step {step} {elapsed/60:.1f} min train {run_loss/run_n:.3f} held-out {hl:.3f} "
                  f"(without emotion {hn:.3f}, opposite {ho:.3f}, plain {hp:.3f}, key mode right {km:.0%}) lr {lr:.1e}",
                  flush=True)
            run_loss, run_n = 0.0, 0
            last_eval = now
            if hl < best:
                best = hl
                M.save(model, str(out / "best.pt"), step=step, heldout_loss=hl, minutes=elapsed / 60, tokens_seen=seen, **tables)
        if now - last_ck >= a.ckpt_minutes * 60:
            save_ckpt(out / "ckpt.pt", model, opt, step, elapsed, best, seen)
            last_ck = now
        if now - last_snap >= a.snapshot_minutes * 60:
            M.save(model, str(out / f"step_{step}.pt"), step=step, minutes=elapsed / 60, tokens_seen=seen, **tables)
            last_snap = now
    hl = evaluate(model, held)
    w.writerow([step, round(elapsed / 60, 2), seen, round(run_loss / max(run_n, 1), 4), round(hl, 4), "", "", "end"])
    log.close()
    if hl < best:
        M.save(model, str(out / "best.pt"), step=step, heldout_loss=hl, minutes=elapsed / 60, tokens_seen=seen, **tables)
    save_ckpt(out / "ckpt.pt", model, opt, step, elapsed, min(best, hl), seen)
    print(f"train_music: done at step {step}, held-out loss {hl:.3f}", flush=True)
    return 0


def start_model(a, ck_path: Path):
    """(model, optimizer, step, elapsed s, best held-out loss, tokens seen): resumed from ck_path when it
    exists, else fine-tuned from --init, else new."""
    cfg = M.ModelConfig(n_layer=a.layers, n_head=a.heads, d_model=a.d_model, context=a.context, dropout=a.dropout)
    model = M.MusicTransformer(cfg)
    step, elapsed, best, seen = 0, 0.0, math.inf, 0
    if ck_path.exists():
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        model = M.MusicTransformer(M.ModelConfig(**ck["config"]))
        model.load_state_dict(ck["state"])
        step, elapsed, best, seen = ck["step"], ck["elapsed"], ck["best"], ck["seen"]
        print(f"train_music: resumed at step {step}, {elapsed/60:.1f} min", flush=True)
    elif a.init:  # fine-tune: the given weights (new layers and appended tokens start from nothing)
        model, _ = M.load(a.init, "cpu")
        model = M.grow_vocab(model)
        model.cfg.dropout = a.dropout
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = a.dropout
        print(f"train_music: initialised from {a.init}", flush=True)
        if a.redraw_valence:
            redraw_condition_path(model.val)
            print("train_music: valence path redrawn as random features", flush=True)
    model.train()
    # the condition paths learn faster: in a fine-tune they start from (near) nothing, the rest is trained
    cond = [p for n, p in model.named_parameters() if n.startswith(COND_PATHS)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(COND_PATHS)]
    # no weight decay on them: their signal is small next to the rest, and decay would win over it
    opt = torch.optim.AdamW([{"params": rest, "mult": 1.0, "weight_decay": 0.05},
                             {"params": cond, "mult": a.cond_lr_mult, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    if ck_path.exists():
        try:
            opt.load_state_dict(ck["opt"])
            for g, mult, wd in zip(opt.param_groups, (1.0, a.cond_lr_mult), (0.05, 0.0)):  # this run's arguments
                g["mult"], g["weight_decay"] = mult, wd
        except ValueError:
            print("train_music: optimizer state from another layout: starting it afresh", flush=True)
    return model, opt, step, elapsed, best, seen


@torch.no_grad()
def redraw_condition_path(mlp: M.CondMLP, seed: int = 0) -> None:
    """Restart a collapsed condition MLP as random features of its scalar with a zero read-out.

    The shipped weights' valence MLP had shrunk to nothing (first-layer std 0.002: its output moved by 0.007
    between valence -0.9 and +0.9, the arousal one's by 0.33). Two small layers in a row are a saddle: each
    one's gradient is scaled by the other, so fine-tuning barely moved it. Kinks spread over [-1, 1] and a read-out
    at zero make the read-out's gradient the features themselves, and the model's output starts unchanged."""
    g = torch.Generator().manual_seed(seed)
    first, last = mlp.net[0], mlp.net[2]
    centre = mlp.net(torch.zeros(1, first.in_features))[0]  # what the path gave at a neutral value
    first.weight.copy_(torch.randn(first.weight.shape, generator=g) * 2.0)
    first.bias.copy_((torch.rand(first.bias.shape, generator=g) * 2 - 1) * 2.0)
    last.weight.zero_()
    last.bias.copy_(centre)


def save_ckpt(path: Path, model, opt, step, elapsed, best, seen) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.cfg.to_dict(), "state": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "best": best, "seen": seen}, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
