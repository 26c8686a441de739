"""EMSYNC's decoder-only music transformer, made for streaming: plain torch, nanoGPT style.

Differences from EMSYNC's model, for cuecast:
- the conditions (valence, arousal, seconds to the next boundary) are given for every token, each through
  a small MLP, and their sum is added to the token embedding and again, through a linear map of its own,
  to the residual stream in front of every block (EMSYNC prepends valence/arousal once per piece; here they
  may change at every step, as the emotion of a stream moves, and deep layers read them directly instead
  of through whatever the first layers kept of them). A condition that is absent (NaN) uses a learned
  "missing" vector, which condition dropout in training teaches (and classifier-free guidance uses);
- rotary position embeddings: attention depends only on the distance between tokens, so a sliding window
  over a KV cache keeps generating past the context length with the distances seen in training;
- a KV cache with a step-at-a-time API (`step`), trimmed to `context` entries (the sliding window).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cuecast.models.music import tokens as T
from cuecast.models.common import checkpoint_fields, load_checkpoint, load_state

OFFSET_MAX = 8.0


@dataclass
class ModelConfig:
    vocab_size: int = T.VOCAB_SIZE
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    context: int = 512  # tokens the model attends to (training length and sliding-window size)
    dropout: float = 0.1
    cond_hidden: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


class CondMLP(nn.Module):
    """A continuous condition -> d_model vector; NaN (absent or dropped) -> a learned missing vector."""

    def __init__(self, n_in: int, d: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.missing = nn.Parameter(torch.randn(d) * 0.02)

    def forward(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.where(present.unsqueeze(-1), self.net(feats), self.missing)


def keys_in_force(idx: torch.Tensor, before: int) -> torch.Tensor:
    """(B, T) index of the key token in force at each position (the last one at or before it; `before`, e.g.
    N_KEYS for none, until the first)."""
    is_key = (idx >= T.KEY0) & (idx < T.KEY0 + T.N_KEYS)
    pos = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
    last = torch.where(is_key, pos, -1).cummax(dim=1).values
    key = idx.gather(1, last.clamp(min=0)) - T.KEY0
    return torch.where(last >= 0, key, torch.full_like(key, before))


# (instrument - 1, pitch class, token) of every pitched note-on: where the scale prior goes
_ON_TOKENS = np.flatnonzero(T.PITCHED_ON)
_PITCHED_ONS = (torch.from_numpy(T.TOK_INST[_ON_TOKENS].astype(np.int64) - 1),
                torch.from_numpy(T.TOK_PITCH[_ON_TOKENS].astype(np.int64) % 12), torch.from_numpy(_ON_TOKENS))


def offset_features(off: torch.Tensor) -> torch.Tensor:
    """Boundary offset (s) -> features that resolve the last fraction of a second, where the chord goes."""
    b = off.clamp(0.0, OFFSET_MAX)
    return torch.stack([b / OFFSET_MAX, torch.exp(-b), torch.exp(-6.0 * b)], dim=-1)


def rope_tables(pos: torch.Tensor, hd: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, hd/2) of the rotary angles at absolute positions pos (T,), shared by every layer."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=pos.device, dtype=torch.float32) / hd))
    ang = pos.to(torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def rope(x: torch.Tensor, rot: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotary embedding of x (B, H, T, hd) with the tables of `rope_tables`."""
    cos, sin = rot
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class KVCache:
    """Keys and values of every layer for the last `window` tokens, in a ring buffer.

    Keys carry their rotary position, so attention does not care in which order they sit: a new token
    overwrites the oldest slot and nothing is copied per step (the sliding window for endless streams)."""

    def __init__(self, n_layer: int, window: int):
        self.window = window
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer
        self.n = 0  # filled slots
        self.slot = 0  # next slot to write
        self.pos = 0  # absolute position of the next token
        self.key = T.N_KEYS  # the key in force (index of its key token; N_KEYS: none yet). It outlives the
        # window: a section's key token may have slid out of attention while its notes are still in that key

    def __len__(self) -> int:
        return self.n

    def past(self, layer: int, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The filled part of the buffer (plus `extra` slots just written this step)."""
        n = min(self.n + extra, self.window)
        if self.k[layer] is None or n == 0:
            return None
        return self.k[layer][:, :, :n], self.v[layer][:, :, :n]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the keys/values (B, H, T, hd) of this step's tokens from slot `slot` on (ring order)."""
        if self.k[layer] is None:
            B, H, _, hd = k.shape
            self.k[layer] = k.new_zeros(B, H, self.window, hd)
            self.v[layer] = v.new_zeros(B, H, self.window, hd)
        if k.shape[2] == 1:  # the one-token step: no index tensor to build
            self.k[layer][:, :, self.slot] = k[:, :, 0]
            self.v[layer][:, :, self.slot] = v[:, :, 0]
            return
        k, v = k[:, :, -self.window:], v[:, :, -self.window:]
        idx = (self.slot + torch.arange(k.shape[2])) % self.window
        self.k[layer][:, :, idx] = k
        self.v[layer][:, :, idx] = v

    def advance(self, n_tokens: int) -> None:
        self.pos += n_tokens
        kept = min(n_tokens, self.window)
        self.slot = (self.slot + kept) % self.window
        self.n = min(self.n + kept, self.window)

    def clone(self) -> "KVCache":
        c = KVCache(len(self.k), self.window)
        c.k = [None if t is None else t.clone() for t in self.k]
        c.v = [None if t is None else t.clone() for t in self.v]
        c.n, c.slot, c.pos, c.key = self.n, self.slot, self.pos, self.key
        return c


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.p_drop = cfg.dropout

    def forward(self, x: torch.Tensor, rot: tuple[torch.Tensor, torch.Tensor], cache: KVCache | None, layer: int) -> torch.Tensor:
        B, Tn, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        shape = (B, Tn, self.n_head, D // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, rot), rope(k, rot)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p_drop if self.training else 0.0)
        else:
            if Tn == 1:  # write first, then attend over the window including itself
                cache.write(layer, k, v)
                kk, vv = cache.past(layer, extra=1)
                y = F.scaled_dot_product_attention(q, kk, vv)
            else:  # a chunk: token i sees the past and chunk tokens up to itself
                past = cache.past(layer)
                kk = k if past is None else torch.cat([past[0], k], dim=2)
                vv = v if past is None else torch.cat([past[1], v], dim=2)
                L = kk.shape[2]
                allowed = torch.arange(L, device=x.device)[None, :] <= (L - Tn + torch.arange(Tn, device=x.device))[:, None]
                y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=allowed)
                cache.write(layer, k, v)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, Tn, D)))
        return x + self.drop(self.mlp(self.ln2(x)))

    def weights(self) -> tuple:
        """The block's tensors, for the functional one-token path (no module-call overhead)."""
        return (self.ln1.weight, self.ln1.bias, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                self.ln2.weight, self.ln2.bias, self.mlp[0].weight, self.mlp[0].bias, self.mlp[2].weight,
                self.mlp[2].bias, self.ln1.eps)


def block_step(w: tuple, n_head: int, x: torch.Tensor, rot, cache: KVCache, layer: int) -> torch.Tensor:
    """Block.forward for one token per row (x: B, 1, D) with a cache, in plain functional calls (eval mode)."""
    l1w, l1b, qw, qb, pw, pb, l2w, l2b, m0w, m0b, m2w, m2b, eps = w
    B, _, D = x.shape
    hd = D // n_head
    qkv = F.linear(F.layer_norm(x, (D,), l1w, l1b, eps), qw, qb).view(B, 3, n_head, 1, hd).transpose(0, 1)
    # rotary on q and k at once, as a complex product over the (even, odd) pairs: the same maths as rope()
    qk = torch.view_as_real(torch.view_as_complex(qkv[:2].reshape(2, B, n_head, 1, hd // 2, 2)) * rot).flatten(-2)
    q, k, v = qk[0], qk[1], qkv[2]
    cache.write(layer, k, v)
    kk, vv = cache.past(layer, extra=1)
    y = F.scaled_dot_product_attention(q, kk, vv)
    x = x + F.linear(y.transpose(1, 2).reshape(B, 1, D), pw, pb)
    return x + F.linear(F.gelu(F.linear(F.layer_norm(x, (D,), l2w, l2b, eps), m0w, m0b)), m2w, m2b)


class MusicTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.val = CondMLP(1, cfg.d_model, cfg.cond_hidden)
        self.aro = CondMLP(1, cfg.d_model, cfg.cond_hidden)
        self.off = CondMLP(3, cfg.d_model, cfg.cond_hidden)
        # the conditions again in front of every block; zero at start, so weights trained without these
        # layers load unchanged and a fine-tune starts from the same model
        self.cond_layers = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.n_layer))
        # and on the choice of a key (a section's mode): a prior over the key tokens from the conditions, added to
        # their logits. Through the tied embedding alone a fine-tune learnt where keys go but not which mode the
        # valence asks for; zero at start, like the layers above
        self.key_prior = nn.Linear(cfg.d_model, T.N_KEYS)
        # and from the key to the notes: a bias on each pitched instrument's note-ons by their degree in the key in
        # force (instrument x mode x degree). A fine-tune with key tokens learnt to pick the mode but then played
        # in another key (a tonic is one token among hundreds for attention to find); this makes the key's scale
        # one learned table, the same in every transposition. Zero at start, like the layers above
        self.scale_prior = nn.Parameter(torch.zeros(len(T.INSTS) - 1, 2, 12))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as nanoGPT
        self.apply(self._init)
        for n, p in self.named_parameters():
            if n.endswith("proj.weight") or n.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))
        for lin in (*self.cond_layers, self.key_prior):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def train(self, mode: bool = True):
        self._va_memo = {}  # step()'s memos are stale once the weights may change
        self._off_memo = {}
        self._layer_memo = {}
        self._rows_memo = {}
        self._fast = None
        self._scale_memo = None
        return super().train(mode)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def condition(self, val: torch.Tensor, aro: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """The sum of the three condition vectors (..., d_model); NaN conditions are missing."""
        c = self.val(val.nan_to_num(0.0).unsqueeze(-1), ~val.isnan())
        c = c + self.aro(aro.nan_to_num(0.0).unsqueeze(-1), ~aro.isnan())
        return c + self.off(offset_features(off.nan_to_num(0.0)), ~off.isnan())

    def forward(self, idx, val, aro, off, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """Logits (B, T, V) for tokens idx (B, T) with per-token conditions (B, T); loss when targets given.
        With a cache, idx continues the cached tokens and the cache is extended (and trimmed)."""
        Tn = idx.shape[1]
        start = cache.pos if cache is not None else 0
        pos = torch.arange(start, start + Tn, device=idx.device)
        c = self.condition(val, aro, off)
        x = self.drop(self.tok(idx) + c)
        rot = rope_tables(pos, self.cfg.d_model // self.cfg.n_head)
        for i, b in enumerate(self.blocks):
            x = b(x + self.cond_layers[i](c), rot, cache, i)
        keys = keys_in_force(idx, cache.key if cache is not None else T.N_KEYS)
        logits = self._with_key_prior(self._full_vocab(self.head(self.ln_f(x))), c) + self.scale_rows()[keys]
        if cache is not None:
            cache.advance(Tn)
            cache.key = int(keys[0, -1])  # the streams of one cache share their tokens
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=T.PAD)
        return logits, loss

    def new_cache(self, window: int | None = None) -> KVCache:
        return KVCache(self.cfg.n_layer, window or self.cfg.context)

    @torch.inference_mode()
    def step(self, tok: int, val: float, aro: float, off: float, cache: KVCache) -> torch.Tensor:
        """Feed one token with its conditions (NaN = missing); logits (V,) of the next token."""
        return self.step_rows(tok, ((val, aro, off),), cache)[0]

    @torch.inference_mode()
    def step_rows(self, tok: int, rows, cache: KVCache) -> torch.Tensor:
        """One token fed to B streams that differ only in their conditions (rows of (val, aro, off)), e.g. with
        and without valence for guidance; logits (B, V). The cache holds all B streams.

        The same maths as forward() with a cache, with fewer tiny ops: condition vectors are memoised
        (valence/arousal change rarely within a stream; tokens at one time share their offset)."""
        conds, key_prior = self._rows_conditions(tuple(rows))  # (B, 1 + n_layer, D), (B, V)
        x = (conds[:, 0] + self.tok.weight[tok]).unsqueeze(1)
        if getattr(self, "_fast", None) is None:
            hd = self.cfg.d_model // self.cfg.n_head
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd))
            self._fast = ([b.weights() for b in self.blocks], inv)
        weights, inv = self._fast
        rot = torch.polar(torch.ones_like(inv), cache.pos * inv)  # cos + i sin of this position's angles
        for i, w in enumerate(weights):
            x = block_step(w, self.cfg.n_head, x + conds[:, i + 1 : i + 2], rot, cache, i)
        cache.advance(1)
        if T.KEY0 <= tok < T.KEY0 + T.N_KEYS:
            cache.key = tok - T.KEY0
        logits = self._full_vocab(F.linear(self.ln_f(x)[:, -1], self.tok.weight))
        logits = logits if key_prior is None else logits + key_prior
        return logits + self.scale_rows()[cache.key] if cache.key < T.N_KEYS else logits

    def _rows_conditions(self, rows: tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The condition vectors of B rows stacked, and what the key prior adds to their logits (None for weights
        without key tokens). Memoised per set of rows: the conditions change far less often than tokens come."""
        memo = getattr(self, "_rows_memo", None)
        if memo is None or len(memo) > 256:
            memo = self._rows_memo = {}
        out = memo.get(rows)
        if out is None:
            conds = torch.stack([self._cond_vectors(*r) for r in rows])
            out = memo[rows] = (conds, self._key_prior_logits(conds[:, 0]))
        return out

    def scale_rows(self) -> torch.Tensor:
        """(N_KEYS + 1, V): what the scale prior adds to the logits under each key (last row: no key yet)."""
        rows = None if self.training else getattr(self, "_scale_memo", None)
        if rows is None:
            inst, pc, on = (t.to(self.scale_prior.device) for t in _PITCHED_ONS)
            keys = torch.arange(T.N_KEYS, device=on.device)
            degree = (pc[None, :] - keys[:, None] % 12) % 12  # (N_KEYS, n_on)
            rows = self.scale_prior.new_zeros(T.N_KEYS + 1, T.VOCAB_SIZE)
            rows[: T.N_KEYS, on] = self.scale_prior[inst[None, :], (keys // 12)[:, None], degree]
            if not self.training:
                self._scale_memo = rows
        return rows

    def _with_key_prior(self, logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        prior = self._key_prior_logits(c)
        return logits if prior is None else logits + prior

    def _key_prior_logits(self, c: torch.Tensor) -> torch.Tensor | None:
        """What the key prior adds to the logits under conditions c; None for weights from before key tokens
        (they never choose one)."""
        if self.cfg.vocab_size < T.KEY0 + T.N_KEYS:
            return None
        return F.pad(self.key_prior(c), (T.KEY0, T.VOCAB_SIZE - T.KEY0 - T.N_KEYS))

    def _full_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits over this cuecast's vocabulary: weights trained before tokens were appended never choose them."""
        missing = T.VOCAB_SIZE - logits.shape[-1]
        return F.pad(logits, (0, missing), value=-math.inf) if missing > 0 else logits

    def _cond_vectors(self, val: float, aro: float, off: float) -> torch.Tensor:
        """(1 + n_layer, D): what the conditions add to the embedding and in front of each block."""
        c = self._cond_vector(val, aro, off)
        key = (val, aro, off)
        memo = getattr(self, "_layer_memo", None)
        if memo is None or len(memo) > 256:
            memo = self._layer_memo = {}
        out = memo.get(key)
        if out is None:
            per_layer = [lin(c) for lin in self.cond_layers]
            out = memo[key] = torch.stack([c, *per_layer])
        return out

    def _cond_vector(self, val: float, aro: float, off: float) -> torch.Tensor:
        dev = self.tok.weight.device
        key = (val, aro)
        if not hasattr(self, "_va_memo") or len(self._va_memo) > 256:
            self._va_memo = {}
            self._off_memo = {}
        va = self._va_memo.get(key)
        if va is None:
            c = torch.tensor([val, aro], dtype=torch.float32, device=dev)
            va = self.val(c[:1].nan_to_num(0.0), ~c[0].isnan()) + self.aro(c[1:].nan_to_num(0.0), ~c[1].isnan())
            self._va_memo[key] = va
        if math.isnan(off):
            return va + self.off.missing
        ok = (off, key)
        cv = self._off_memo.get(ok)
        if cv is None:
            cv = va + self.off.net(offset_features(torch.tensor(off, dtype=torch.float32, device=dev)))
            if len(self._off_memo) > 64:
                self._off_memo = {}
            self._off_memo[ok] = cv
        return cv

    @torch.no_grad()
    def full_step(self, toks: list[int], conds: list[tuple[float, float, float]]) -> torch.Tensor:
        """EMSYNC's way: recompute the whole (last `context`) tokens for the next token's logits."""
        dev = self.tok.weight.device
        toks, conds = toks[-self.cfg.context:], conds[-self.cfg.context:]
        t = torch.tensor([toks], device=dev)
        c = torch.tensor([conds], dtype=torch.float32, device=dev)
        logits, _ = self(t, c[..., 0], c[..., 1], c[..., 2])
        return logits[0, -1]


# Vocabularies a checkpoint may have: this one, or one of its prefixes (tokens were only ever appended)
KNOWN_VOCABS = (T.VOCAB_SIZE, T.VOCAB_BEFORE_KEYS)


def save(model: MusicTransformer, path: str, **extra) -> None:
    torch.save({"config": model.cfg.to_dict(), "state": model.state_dict(), "vocab_size": model.cfg.vocab_size,
                **extra}, path)


def grow_vocab(model: MusicTransformer) -> MusicTransformer:
    """The same model over this cuecast's whole vocabulary: rows of appended tokens start small and random
    (as a new model's), every other weight is kept (for fine-tuning older weights)."""
    if model.cfg.vocab_size == T.VOCAB_SIZE:
        return model
    grown = MusicTransformer(ModelConfig(**{**model.cfg.to_dict(), "vocab_size": T.VOCAB_SIZE}))
    state = dict(model.state_dict())
    emb = grown.tok.weight.detach().clone()
    emb[: model.cfg.vocab_size] = state.pop("tok.weight")
    state.pop("head.weight", None)
    grown.load_state_dict({**state, "tok.weight": emb, "head.weight": emb}, strict=True)
    return grown


def load(path: str, device: str = "cpu") -> tuple[MusicTransformer, dict]:
    """Model and checkpoint dict; FileNotFoundError/ValueError (one line) say how to produce the weights."""
    import os

    what = "music transformer weights"
    how = "train it with `python tools/build_corpus.py` then `python tools/train_music.py` (see models/weights/MUSIC_MODEL_CARD.md)"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at {path}: {how}")
    ck = load_checkpoint(path, what, how, device)  # data only: a pickle that would run code is refused
    checkpoint_fields(ck, {"config": dict, "state": dict}, what, path, how)
    cfg = _checked_config(ck["config"], path, how)
    if ck.get("vocab_size") not in KNOWN_VOCABS or cfg.vocab_size != ck.get("vocab_size"):
        raise ValueError(f"{what} at {path} have vocabulary {ck.get('vocab_size')}, this cuecast {T.VOCAB_SIZE}; {how}")
    model = MusicTransformer(cfg)
    state = ck["state"]
    if isinstance(state, dict):  # weights from before the per-block condition layers: those start at zero,
        # which is the same model
        state = {**{k: v for k, v in model.state_dict().items() if k.startswith(("cond_layers.", "key_prior.", "scale_prior"))}, **state}
    load_state(model, state, what, path, how)
    model.to(device).eval()
    return model, ck


# What a checkpoint's config may ask for: a file must not make the loader build a model of any size.
_CONFIG_RANGES = {"vocab_size": (1, 1 << 16), "n_layer": (1, 64), "n_head": (1, 64), "d_model": (8, 8192),
                  "context": (8, 1 << 16), "cond_hidden": (1, 8192)}


def _checked_config(raw: dict, path: str, how: str) -> ModelConfig:
    unknown = set(raw) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"music transformer weights at {path}: unknown config key {sorted(unknown)[0]!r}; {how}")
    for key, (lo, hi) in _CONFIG_RANGES.items():
        v = raw.get(key, getattr(ModelConfig, key))
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"music transformer weights at {path}: config {key} = {v!r} is outside {lo}..{hi}; {how}")
    cfg = ModelConfig(**raw)
    if cfg.d_model % cfg.n_head or not isinstance(cfg.dropout, (int, float)) or not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"music transformer weights at {path}: config d_model/n_head/dropout do not fit; {how}")
    return cfg
