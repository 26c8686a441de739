"""Train the music transformer on the corpus of tools/build_corpus.py, on CPU, within a time budget.

Checkpoints every few minutes (resumes from OUT/ckpt.pt when started again), logs the training curve to
OUT/train_log.csv, keeps the best held-out checkpoint in OUT/best.pt, and with --ship copies it (and the
log) to models/weights/ every few minutes, committing them with --commit.

    nohup nice -n 5 python tools/train_music.py --data data/music --out runs/music --minutes 90 --ship --commit &
    python tools/train_music.py --bench            # tokens/s of a few sizes and thread counts
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cuecast.models.music import model as M
from cuecast.models.music import tokens as T
from cuecast.models.music.corpus import quantile_table, to_unit
from cuecast.models.music.theory import key_correlations

SHIP_FILES = ("models/weights/music_transformer.pt", "models/weights/music_train_log.csv")


def transpose_tables(max_shift: int = 6) -> np.ndarray:
    """tab[s + max_shift, tok]: the token transposed by s semitones (pitched notes only, octave-folded at the edges)."""
    tabs = np.tile(np.arange(T.VOCAB_SIZE), (2 * max_shift + 1, 1))
    for tok in range(T.VOCAB_SIZE):
        kind, inst, pitch = T.decode(tok)
        if kind not in ("on", "off") or inst == 0:
            continue
        for s in range(-max_shift, max_shift + 1):
            p = pitch + s
            while p > T.PITCH_HI:
                p -= 12
            while p < T.PITCH_LO:
                p += 12
            tabs[s + max_shift, tok] = T.on_token(inst, p) if kind == "on" else T.off_token(inst, p)
    return tabs


# The scale degrees that tell major from minor (third, sixth, seventh): moving them by a semitone turns a
# passage into its parallel mode while its rhythm, voicing and instruments stay as they were.
MAJOR_TO_MINOR = {4: 3, 9: 8, 11: 10}
MINOR_TO_MAJOR = {3: 4, 8: 9, 10: 11}


def parallel_mode_tables() -> np.ndarray:
    """tab[m, r, tok]: the token in the parallel mode of tonic r (m=0: major -> minor, m=1: minor -> major)."""
    tabs = np.tile(np.arange(T.VOCAB_SIZE), (2, 12, 1))
    for tok in range(T.VOCAB_SIZE):
        kind, inst, pitch = T.decode(tok)
        if kind not in ("on", "off") or inst == 0:
            continue
        for m, moves in enumerate((MAJOR_TO_MINOR, MINOR_TO_MAJOR)):
            for r in range(12):
                dst = moves.get((pitch - r) % 12)
                if dst is None:
                    continue
                p = pitch + dst - (pitch - r) % 12
                p = p + 12 if p < T.PITCH_LO else p - 12 if p > T.PITCH_HI else p
                tabs[m, r, tok] = T.on_token(inst, p) if kind == "on" else T.off_token(inst, p)
    return tabs


def window_key(toks: np.ndarray) -> tuple[int, int, float]:
    """(mode 0 major / 1 minor, tonic, major-minor key score) of a window's pitched note-ons."""
    on = toks[T.PITCHED_ON[toks]]
    hist = np.bincount(T.TOK_PITCH[on] % 12, minlength=12).astype(float)
    major, minor = key_correlations(hist)
    tm, tn = int(np.argmax(major)), int(np.argmax(minor))
    return (0, tm, float(major[tm] - minor[tn])) if major[tm] >= minor[tn] else (1, tn, float(major[tm] - minor[tn]))


class Batches:
    """Random windows of the token stream (pieces separated by BOS) with their per-token conditions.

    With `mode_flip` > 0, that fraction of training windows is moved to its parallel mode and every window's
    valence becomes its own key score (ranked over the corpus's windows). The flips balance major and minor
    over the same material, so at the start of a window, before the context shows the mode, the valence
    input is the only thing that tells it: the model has to learn to use it (EMSYNC's labels alone let it
    read the mode off the context and ignore valence).
    """

    def __init__(self, path: Path, context: int, seed: int, mode_flip: float = 0.0,
                 source_weights: dict[str, float] | None = None):
        z = np.load(path / "corpus.npz")
        self.tokens = z["tokens"].astype(np.int64)
        self.cond = np.stack([z["valence"], z["arousal"], z["offset"]], axis=1).astype(np.float32)
        self.n_train = int(z["n_train"])
        self.context = context
        self.rng = np.random.default_rng(seed)
        if self.n_train <= context + 1 or len(self.tokens) - self.n_train <= context + 1:
            raise SystemExit("train_music: corpus too small for the context; build a bigger one")
        self.tabs = transpose_tables()
        self.mode_flip = mode_flip
        self.start_cdf = self._start_cdf(path, source_weights) if source_weights else None
        if self.start_cdf is not None:
            self._rerank_arousal(z["arousal_table"], np.random.default_rng(seed + 11))
        self.mode_tabs = parallel_mode_tables()
        self.key_table = self._window_key_table(np.random.default_rng(seed + 7)) if mode_flip > 0 else None
        self.bos = np.flatnonzero(self.tokens[: self.n_train] == T.BOS)

    def _start_cdf(self, path: Path, weights: dict[str, float]) -> np.ndarray:
        """CDF over training start positions that gives each source its weight's share of the windows.

        The sources differ in kind (dense multi-track game music, sparse one-voice folk tunes, grooves in
        between); drawn by token count the largest decides what a fresh start sounds like."""
        pieces = [m for m in json.loads((path / "pieces.json").read_text()) if m["split"] == "train"]
        src = np.zeros(self.n_train, dtype=np.int64)
        names = sorted({m["source"].split("/")[0] for m in pieces})
        for m in pieces:
            src[m["start"]:m["start"] + m["length"]] = names.index(m["source"].split("/")[0])
        src = src[: self.n_train - self.context - 1]
        counts = np.bincount(src, minlength=len(names)).astype(float)
        w = np.array([weights.get(n, 0.0) for n in names]) / np.maximum(counts, 1)
        if not w.any():
            raise SystemExit(f"train_music: --source-weights names none of the corpus's sources {names}")
        print("train_music: window share by source " + ", ".join(
            f"{n} {x:.2f}" for n, x in zip(names, w * counts / (w * counts).sum())), flush=True)
        cdf = np.cumsum(w[src])
        return cdf / cdf[-1]

    def _rerank_arousal(self, raw_table: np.ndarray, rng, n: int = 200_000) -> None:
        """Arousal ranked over the windows training draws, not over the corpus's tokens.

        The corpus ranks arousal over its tokens; when one source holds most of them (thousands of one-voice
        folk tunes) it takes most of the range, and the music the weights favour is squeezed into the top."""
        unit = self.cond[:, 1]
        raw = np.interp(unit, np.linspace(-1, 1, len(raw_table)), raw_table)
        at = np.searchsorted(self.start_cdf, rng.random(n)) + rng.integers(0, self.context, n)
        drawn = raw[at]
        table = quantile_table(drawn[~np.isnan(drawn)])
        self.cond[:, 1] = np.where(np.isnan(unit), np.nan, to_unit(raw, table))

    def _window(self, lo: int, hi: int, n: int, rng, bos_frac: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        if self.start_cdf is not None and lo == 0:
            starts = np.searchsorted(self.start_cdf, rng.random(n))
        else:
            starts = rng.integers(lo, hi - self.context - 1, size=n)
        if bos_frac > 0:  # some windows open a piece: the conditions must carry it while context is short
            at_bos = rng.random(n) < bos_frac
            starts[at_bos] = rng.choice(self.bos[self.bos < hi - self.context - 1], size=int(at_bos.sum()))
        idx = starts[:, None] + np.arange(self.context + 1)[None, :]
        return self.tokens[idx], self.cond[idx[:, :-1]]

    def _window_key_table(self, rng, n: int = 3000) -> np.ndarray:
        """Quantiles of the window key score over training windows, half of them flipped (as in training)."""
        toks, _ = self._window(0, self.n_train, n, rng)
        scores = []
        for i, t in enumerate(toks):
            mode, tonic, score = window_key(t)
            if i % 2:
                mode, tonic, score = window_key(self.mode_tabs[mode, tonic, t])
            scores.append(score)
        return quantile_table(np.array(scores))

    def _window_valence(self, score: float) -> float:
        """A window's key score as valence: its rank among training windows, in [-1, 1]."""
        return float(to_unit(np.array([score]), self.key_table)[0])

    def _flip_modes(self, toks: np.ndarray, cond: np.ndarray) -> np.ndarray:
        for i, t in enumerate(toks):
            mode, tonic, score = window_key(t[:-1])
            if self.rng.random() < self.mode_flip:
                toks[i] = self.mode_tabs[mode, tonic, t]
                score = window_key(toks[i, :-1])[2]
            cond[i, :, 0] = self._window_valence(score)
        return toks

    def train(self, batch: int, p_drop: tuple[float, float, float] = (0.15, 0.15, 0.1), bos_frac: float = 0.0):
        toks, cond = self._window(0, self.n_train, batch, self.rng, bos_frac)
        cond = cond.copy()
        if self.mode_flip > 0:
            toks = self._flip_modes(toks.copy(), cond)
        shift = self.rng.integers(-5, 7, size=batch)
        toks = np.stack([self.tabs[s + 6, t] for s, t in zip(shift, toks)])
        for c, p in enumerate(p_drop):  # condition dropout, per sequence: teaches the missing vectors
            cond[self.rng.random(batch) < p, :, c] = np.nan
        return self._tensors(toks, cond)

    def heldout(self, batch: int, n_batches: int, seed: int = 1234):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n_batches):
            toks, cond = self._window(self.n_train, len(self.tokens), batch, rng)
            if self.key_table is not None:  # the same valence labels as training sees (no flips)
                cond = cond.copy()
                for i, t in enumerate(toks):
                    cond[i, :, 0] = self._window_valence(window_key(t[:-1])[2])
            out.append(self._tensors(toks, cond))
        return out

    @staticmethod
    def _tensors(toks: np.ndarray, cond: np.ndarray):
        t = torch.from_numpy(toks)
        c = torch.from_numpy(cond)
        return t[:, :-1], t[:, 1:], c[..., 0], c[..., 1], c[..., 2]


def lr_at(frac: float, base: float, warm_frac: float = 0.03) -> float:
    """Linear warm-up then cosine decay to a tenth, over the fraction of the time budget used."""
    if frac < warm_frac:
        return base * max(frac / warm_frac, 0.02)
    f = min(1.0, (frac - warm_frac) / (1 - warm_frac))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))


@torch.no_grad()
def evaluate(model: M.MusicTransformer, batches) -> float:
    model.eval()
    losses = [float(model(x, v, a, o, targets=y)[1]) for x, y, v, a, o in batches]
    model.train()
    return float(np.mean(losses))


def git_commit(paths: tuple[str, ...], msg: str) -> None:
    for _ in range(10):
        r = subprocess.run(["git", "add", *paths], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run(["git", "commit", "-m", msg, "--", *paths], capture_output=True, text=True)
            if r.returncode == 0 or "nothing to commit" in r.stdout + r.stderr:
                return
        time.sleep(3)
    print(f"train_music: commit failed: {r.stderr.strip()[:200]}", flush=True)


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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    ap.add_argument("--eval-minutes", type=float, default=3.0)
    ap.add_argument("--ship", action="store_true", help="copy the best checkpoint and log to models/weights/")
    ap.add_argument("--ship-minutes", type=float, default=10.0)
    ap.add_argument("--commit", action="store_true", help="git commit what --ship copies")
    ap.add_argument("--bos-frac", type=float, default=0.0,
                    help="fraction of training windows that start at a piece's first token (conditions matter most there)")
    ap.add_argument("--mode-flip", type=float, default=0.0,
                    help="fraction of training windows moved to their parallel mode, valence from each window's key")
    ap.add_argument("--source-weights", default="",
                    help="share of training windows per source, e.g. debian=0.4,mma=0.35,music21=0.25 (default: by tokens)")
    ap.add_argument("--init", default="", help="weights to start from (fine-tuning); ignored when resuming")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args(argv)
    if a.bench:
        bench(a)
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        weights = {k: float(v) for k, v in (x.split("=") for x in a.source_weights.split(",") if x.strip())}
    except ValueError:
        ap.error("--source-weights must look like debian=0.4,mma=0.35,music21=0.25")
    data = Batches(Path(a.data), a.context, a.seed, mode_flip=a.mode_flip, source_weights=weights)
    held = data.heldout(a.batch, 8)
    cfg = M.ModelConfig(n_layer=a.layers, n_head=a.heads, d_model=a.d_model, context=a.context, dropout=a.dropout)
    model = M.MusicTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05, betas=(0.9, 0.95))
    step, elapsed, best, seen = 0, 0.0, math.inf, 0
    ck_path = out / "ckpt.pt"
    if a.init and not ck_path.exists():  # fine-tune: start from shipped weights with a fresh optimizer
        model, _ = M.load(a.init, "cpu")
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05, betas=(0.9, 0.95))
        print(f"train_music: initialised from {a.init}", flush=True)
    if ck_path.exists():
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        model = M.MusicTransformer(M.ModelConfig(**ck["config"]))
        model.load_state_dict(ck["state"])
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05, betas=(0.9, 0.95))
        opt.load_state_dict(ck["opt"])
        step, elapsed, best, seen = ck["step"], ck["elapsed"], ck["best"], ck["seen"]
        data.rng = np.random.default_rng(a.seed + step)
        print(f"train_music: resumed at step {step}, {elapsed/60:.1f} min", flush=True)
    print(f"train_music: {model.n_params()/1e6:.2f}M params, {data.n_train} train tokens, "
          f"{len(data.tokens) - data.n_train} held-out", flush=True)
    log_path = out / "train_log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    w = csv.writer(log)
    if new_log:
        w.writerow(["step", "minutes", "tokens_seen", "train_loss", "heldout_loss", "lr"])
    model.train()
    t_start = time.time() - elapsed
    last_ck = last_eval = last_ship = time.time()
    run_loss, run_n = 0.0, 0
    while True:
        elapsed = time.time() - t_start
        frac = elapsed / (a.minutes * 60)
        if frac >= 1.0:
            break
        lr = lr_at(frac, a.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, v, ar, o = data.train(a.batch, bos_frac=a.bos_frac)
        _, loss = model(x, v, ar, o, targets=y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        run_loss, run_n = run_loss + loss.item(), run_n + 1
        now = time.time()
        if now - last_eval >= a.eval_minutes * 60 or step == 1:
            hl = evaluate(model, held)
            w.writerow([step, round(elapsed / 60, 2), seen, round(run_loss / run_n, 4), round(hl, 4), f"{lr:.2e}"])
            log.flush()
            print(f"step {step} {elapsed/60:.1f} min train {run_loss/run_n:.3f} held-out {hl:.3f} lr {lr:.1e}", flush=True)
            run_loss, run_n = 0.0, 0
            last_eval = now
            if hl < best:
                best = hl
                M.save(model, str(out / "best.pt"), step=step, heldout_loss=hl, minutes=elapsed / 60, tokens_seen=seen)
        if now - last_ck >= a.ckpt_minutes * 60:
            save_ckpt(ck_path, model, opt, step, elapsed, best, seen)
            last_ck = now
        if a.ship and now - last_ship >= a.ship_minutes * 60:
            ship(out, a.commit, step)
            last_ship = now
    hl = evaluate(model, held)
    w.writerow([step, round(elapsed / 60, 2), seen, round(run_loss / max(run_n, 1), 4), round(hl, 4), "end"])
    log.close()
    if hl < best:
        M.save(model, str(out / "best.pt"), step=step, heldout_loss=hl, minutes=elapsed / 60, tokens_seen=seen)
    save_ckpt(ck_path, model, opt, step, elapsed, min(best, hl), seen)
    if a.ship:
        ship(out, a.commit, step)
    print(f"train_music: done at step {step}, held-out loss {hl:.3f}", flush=True)
    return 0


def save_ckpt(path: Path, model, opt, step, elapsed, best, seen) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.cfg.to_dict(), "state": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "best": best, "seen": seen}, tmp)
    os.replace(tmp, path)


def ship(out: Path, commit: bool, step: int) -> None:
    if not (out / "best.pt").exists():
        return
    shutil.copyfile(out / "best.pt", SHIP_FILES[0] + ".tmp")
    os.replace(SHIP_FILES[0] + ".tmp", SHIP_FILES[0])
    shutil.copyfile(out / "train_log.csv", SHIP_FILES[1])
    if commit:
        git_commit(SHIP_FILES, f"music transformer: checkpoint at step {step}")


if __name__ == "__main__":
    sys.exit(main())
