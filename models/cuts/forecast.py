"""Cut forecasting: the hazard of the next cut over the next few seconds, updated as frames arrive.

The model is a discrete-time hazard network with per-bin covariates: for every future bin (bin_s wide,
`horizon` seconds ahead) it sees what a cut in that bin would mean (the length the current shot would
have, against the recent shot lengths and their trend; where the bin falls on the audio's beat grid) plus
the context (motion, how much history there is), and one small MLP, shared by all bins, gives that bin's
hazard P(cut in bin | no cut before). Shared weights make it translation-equivariant in time, so a few
thousand parameters learn sharp forecasts from little data.

Online state (ContextTracker) is plain numpy: known cut times, frame motion, an audio onset envelope and
the beat grid estimated from it. Training (tools/train_cut_forecast.py) runs the same tracker over edits
made by tools/make_edits.py, so features at training and at run time are computed by the same code.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cuecast.models.cuts.config import CutConfig
from cuecast.models.common import checkpoint_fields, load_checkpoint, load_state, pick_device
from cuecast.types import AudioChunk, Boundary, Forecast, Frame

BIN_S = 0.1  # forecast resolution: well inside the +-150 ms a musician can still hit
HORIZON_S = 4.0  # how far ahead the hazard reaches
N_SHOTS = 8  # shot lengths remembered
# one context row per tick; bin_features() turns it into per-bin covariates
CTX = ("t", "tsl", "n_shots", *[f"len{i}" for i in range(N_SHOTS)], "motion", "beat_period", "beat_anchor",
       "beat_conf", "has_audio")
CI = {k: i for i, k in enumerate(CTX)}
CONTEXT_VERSION = 1  # bump when ContextTracker computes a column differently (cached replays are keyed on it)
N_FEATURES = 29
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "cut_forecast.pt"


class OnsetEnvelope:
    """Spectral-flux onset strength of the input's audio, and the beat grid it implies."""

    def __init__(self, rate: int = 22050, n_fft: int = 1024, hop: int = 512, keep_s: float = 8.0):
        self.rate, self.n_fft, self.hop = rate, n_fft, hop
        self.fps = rate / hop
        self.buf = np.zeros(0, np.float32)
        self.t_buf = 0.0  # media time of buf[0]
        self.env: deque[float] = deque(maxlen=int(keep_s * self.fps))
        self.t_end = 0.0  # media time just after the newest envelope value
        self.n_values = 0  # envelope values so far (recorded by make_edits for replays)
        self.prev_mag: np.ndarray | None = None
        self.window = np.hanning(n_fft).astype(np.float32)

    def add(self, chunk: AudioChunk) -> None:
        if chunk.rate != self.rate:  # keep the envelope rate fixed whatever the input gives
            n = int(round(len(chunk.samples) * self.rate / chunk.rate))
            x = np.interp(np.linspace(0, len(chunk.samples) - 1, n), np.arange(len(chunk.samples)), chunk.samples)
            samples = x.astype(np.float32)
        else:
            samples = chunk.samples.astype(np.float32, copy=False)
        if self.buf.size == 0:
            self.t_buf = chunk.t
        self.buf = np.concatenate([self.buf, samples])
        while self.buf.size >= self.n_fft:
            mag = np.log1p(10 * np.abs(np.fft.rfft(self.buf[: self.n_fft] * self.window)))
            flux = 0.0 if self.prev_mag is None else float(np.maximum(mag - self.prev_mag, 0).mean())
            self.prev_mag = mag
            self.buf = self.buf[self.hop:]
            self.t_buf += self.hop / self.rate
            self.push(flux, self.t_buf + self.n_fft / self.rate / 2)

    def push(self, flux: float, t_end: float) -> None:
        """One envelope value, ending at media time t_end (replays of recorded envelopes come in here)."""
        self.env.append(flux)
        self.t_end = t_end
        self.n_values += 1

    def beat(self, min_bpm: float = 60.0, max_bpm: float = 180.0) -> tuple[float, float, float]:
        """(period s, time of the latest beat, confidence 0..1); period 0 when there is no beat to see."""
        e = np.asarray(self.env, np.float64)
        if e.size < 3 * self.fps:
            return 0.0, 0.0, 0.0
        # a little smoothing (about one hop) so a period between two whole lags still lines up
        e = np.convolve(e - e.mean(), [0.25, 0.5, 0.25], mode="same")
        lo, hi = int(self.fps * 60 / max_bpm), int(self.fps * 60 / min_bpm)
        lags = np.arange(lo, hi + 1)
        ac = np.array([np.dot(e[:-lag], e[lag:]) for lag in lags])
        denom = float(np.dot(e, e)) + 1e-9
        # a tempo prior around 120 BPM settles the octave (a beat at P also correlates at 2P)
        bpm = 60.0 * self.fps / lags
        k = int(np.argmax(ac * np.exp(-0.5 * (np.log2(bpm / 120.0) / 0.9) ** 2)))
        lag = lo + k
        if 0 < k < len(ac) - 1:  # parabolic refinement: sub-sample period
            a, b, c = ac[k - 1], ac[k], ac[k + 1]
            lag = lo + k + 0.5 * (a - c) / (a - 2 * b + c + 1e-12)
        conf = float(np.clip(ac[k] / denom * e.size / (e.size - lo - k), 0.0, 1.0))
        period = lag / self.fps
        # phase: the offset whose comb (every period back from the newest value) collects most onset
        n = e.size
        ip = int(round(lag))
        scores = [e[np.arange(n - 1 - off, 0, -lag).round().astype(int)].sum() for off in range(ip)]
        off = int(np.argmax(scores))
        last_beat = self.t_end - (off + 1) / self.fps
        return period, last_beat, conf


class ContextTracker:
    """What the forecaster knows at a tick: cuts so far, motion, and the audio's beat grid."""

    def __init__(self):
        self.cuts: list[float] = []
        self.t0: float | None = None
        self.motion = 0.0
        self.prev_small: np.ndarray | None = None
        self.audio = OnsetEnvelope()
        self.has_audio = False

    def add_frame(self, frame: Frame) -> None:
        if self.t0 is None:
            self.t0 = frame.t
        img = frame.image
        step = max(1, img.shape[1] // 32)
        small = img[::step, ::step].mean(axis=2, dtype=np.float32) / 255.0
        if self.prev_small is not None and self.prev_small.shape == small.shape:
            m = float(np.abs(small - self.prev_small).mean())
            self.motion = 0.9 * self.motion + 0.1 * m  # ~0.4 s smoothing at 25 fps
        self.prev_small = small

    def add_cuts(self, boundaries: list[Boundary]) -> None:
        for b in boundaries:
            if not self.cuts or b.t > self.cuts[-1] + 0.2:
                self.cuts.append(b.t)

    def add_audio(self, chunk: AudioChunk) -> None:
        self.has_audio = True
        self.audio.add(chunk)

    def row(self, t: float) -> np.ndarray:
        r = np.zeros(len(CTX), np.float32)
        r[CI["t"]] = t
        last = self.cuts[-1] if self.cuts else (self.t0 if self.t0 is not None else t)
        r[CI["tsl"]] = max(0.0, t - last)
        r[CI["n_shots"]] = len(self.cuts)
        lens = np.diff(self.cuts)[::-1][:N_SHOTS]  # newest first
        r[CI["len0"]: CI["len0"] + len(lens)] = lens
        r[CI["motion"]] = self.motion
        if self.has_audio:
            p, anchor, conf = self.audio.beat()
            r[CI["beat_period"]], r[CI["beat_anchor"]], r[CI["beat_conf"]] = p, anchor, conf
            r[CI["has_audio"]] = 1.0
        return r


def next_tick_after(t: float, bin_s: float = BIN_S) -> float:
    """The tick after media time t (the epsilon keeps 8.6/0.1 = 85.999... from ticking twice)."""
    return (math.floor(t / bin_s + 1e-6) + 1) * bin_s


def bin_taus(horizon: float = HORIZON_S, bin_s: float = BIN_S) -> np.ndarray:
    n = int(round(horizon / bin_s))
    return (np.arange(n) + 0.5) * bin_s


def bin_features(ctx: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Per-bin covariates. ctx: N x len(CTX) rows, taus: H bin centres (s ahead) -> N x H x N_FEATURES."""
    c = {k: ctx[:, i:i + 1] for k, i in CI.items()}  # each N x 1, broadcasting against taus (1 x H)
    tau = taus[None, :]
    d = c["tsl"] + tau  # the current shot's length if the cut fell in this bin
    ld = torch.log(d + 1e-3)
    feats = [ld, torch.log(tau).expand_as(ld), torch.log1p(c["n_shots"]).expand_as(ld), (c["n_shots"] == 0).float().expand_as(ld)]
    lens = ctx[:, CI["len0"]: CI["len0"] + N_SHOTS]
    have = (lens > 0).float()
    for i in range(N_SHOTS):  # against each recent shot: 0 where the shot would be as long as that one
        li = lens[:, i:i + 1]
        feats.append(have[:, i:i + 1] * (ld - torch.log(li.clamp_min(1e-3))).clamp(-3, 3))
    feats.append(have[:, :N_SHOTS].mean(1, keepdim=True).expand_as(ld))
    l0, l1 = lens[:, 0:1].clamp_min(1e-3), lens[:, 1:2].clamp_min(1e-3)
    both = have[:, 0:1] * have[:, 1:2]
    trend = (l0 * (l0 / l1).clamp(0.5, 2.0))  # the next shot if the editing keeps accelerating
    feats.append(both * (ld - torch.log(trend)).clamp(-3, 3))
    med = torch.where(have > 0, lens, torch.full_like(lens, float("nan"))).nanmedian(1, keepdim=True).values
    feats.append(have[:, 0:1] * (ld - torch.log(torch.nan_to_num(med, nan=1.0).clamp_min(1e-3))).clamp(-3, 3))
    # spread of recent lengths: steady editing makes the length features trustworthy
    ll, n = torch.log(lens.clamp_min(1e-3)), have.sum(1, keepdim=True)
    mean = (ll * have).sum(1, keepdim=True) / n.clamp_min(1)
    var = ((ll - mean) ** 2 * have).sum(1, keepdim=True) / (n - 1).clamp_min(1)
    spread = torch.where(n > 1, var.sqrt(), torch.ones_like(l0))
    feats.append(spread.expand_as(ld))
    feats.append(torch.log(c["motion"] + 1e-3).expand_as(ld))
    # beat grid: where the bin falls between beats, weighted by how sure the beat is
    per = c["beat_period"].clamp_min(1e-3)
    phase = 2 * math.pi * ((c["t"] + tau) - c["beat_anchor"]) / per
    conf = c["beat_conf"] * (c["beat_period"] > 0).float()
    feats += [conf * torch.cos(phase), conf * torch.sin(phase), conf.expand_as(ld), c["has_audio"].expand_as(ld)]
    # how many beats the shot would last, and how far that is from a whole number
    beats = d / per
    off_beat = (beats - beats.round()).abs() * 2
    feats.append(conf * off_beat)
    # does the editing follow this beat? Music the editor ignored has cuts anywhere on the grid; only
    # when the past cuts sat on it should the phase of a bin count
    follow = on_beat(c["t"] - c["tsl"], lens, have, c["beat_anchor"], per) * conf
    feats += [follow.expand_as(ld), follow * torch.cos(phase), follow * off_beat]
    # bar structure: music edits favour shots of an even number of beats, and of whole bars
    feats += [follow * torch.cos(math.pi * beats), follow * torch.cos(math.pi * beats / 2)]
    # accelerating editing over three shots (less noisy than one ratio of two detected lengths)
    feats.append(trend_feature(ld, lens, have))
    # a take already longer than every recent shot: the history says less and less
    longest = torch.where(have > 0, lens, torch.zeros_like(lens)).amax(1, keepdim=True).clamp_min(1e-3)
    feats.append(have[:, 0:1] * (ld - torch.log(longest)).clamp(0, 3))
    return torch.stack([f.expand_as(ld) for f in feats], dim=-1)


def on_beat(last_cut: torch.Tensor, lens: torch.Tensor, have: torch.Tensor, anchor: torch.Tensor,
            per: torch.Tensor) -> torch.Tensor:
    """1 when the recent cuts fell on the beat grid, about 0 when they fell anywhere on it (N x 1).

    The cut times are the last cut and the ones before it (lens back); each one's distance from its
    nearest beat is 0..0.5 beats, 0.25 on average for cuts that ignore the beat."""
    back = torch.cat([torch.zeros_like(lens[:, :1]), torch.cumsum(lens * have, 1)], 1)  # N x (N_SHOTS+1)
    known = torch.cat([torch.ones_like(have[:, :1]), have], 1)
    ph = (last_cut - back - anchor) / per
    dist = (ph - ph.round()).abs()
    n = known.sum(1, keepdim=True)
    mean = (dist * known).sum(1, keepdim=True) / n
    return torch.where(n >= 3, (1 - 4 * mean).clamp(-1, 1), torch.zeros_like(mean))


def trend_feature(ld: torch.Tensor, lens: torch.Tensor, have: torch.Tensor) -> torch.Tensor:
    """The bin's shot length against the next length if the last three shot-to-shot ratios go on."""
    ratio = torch.log(lens[:, 0:3].clamp_min(1e-3)) - torch.log(lens[:, 1:4].clamp_min(1e-3))
    ok = have[:, 1:4]
    r = ((ratio * ok).sum(1, keepdim=True) / ok.sum(1, keepdim=True).clamp_min(1)).clamp(-0.7, 0.7)
    pred = torch.log(lens[:, 0:1].clamp_min(1e-3)) + r
    return have[:, 3:4] * (ld - pred).clamp(-3, 3)


class HazardNet(nn.Module):
    """Shared per-bin MLP: covariates -> logit of the bin's hazard."""

    def __init__(self, n_in: int = N_FEATURES, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats).squeeze(-1)


def survival_nll(logits: torch.Tensor, target_bin: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the time to the next cut, per row.

    logits: N x H hazard logits; target_bin: N (index of the bin holding the next cut, or H when it lies
    beyond the horizon: censored, only survival counts)."""
    log_h = torch.nn.functional.logsigmoid(logits)
    log_s = torch.nn.functional.logsigmoid(-logits)  # log(1 - h)
    h = logits.shape[1]
    idx = torch.arange(h, device=logits.device)[None, :]
    before = (idx < target_bin[:, None]).float()
    at = (idx == target_bin[:, None]).float()
    return -(log_s * before).sum(1) - (log_h * at).sum(1)


def constant_rate_hazard(ctx: torch.Tensor, n_bins: int, bin_s: float = BIN_S, prior_rate: float = 0.3,
                         prior_s: float = 5.0) -> torch.Tensor:
    """The baseline: a Poisson process at the rate seen so far (with a weak prior), same hazard every bin."""
    elapsed = ctx[:, CI["t"]] - ctx[:, CI["t"]].min()  # rows of one edit: time since its start
    rate = (ctx[:, CI["n_shots"]] + prior_rate * prior_s) / (elapsed + prior_s)
    h = 1.0 - torch.exp(-rate * bin_s)
    return h[:, None].expand(-1, n_bins)


class CutForecaster:
    """Online forecaster: call update() for every frame with the boundaries just reported.

    Without `model` it loads the shipped weights (or cfg.forecast_weights); a missing or broken file
    raises FileNotFoundError / ValueError saying how to make it.
    """

    def __init__(self, cfg: CutConfig | None = None, device: str | None = None, model: HazardNet | None = None):
        self.cfg = cfg or CutConfig()
        self.device = pick_device(device or self.cfg.device, "cuts.device")
        horizon, bin_s = HORIZON_S, BIN_S
        if model is None:
            model, horizon, bin_s = _load_weights(self.cfg)
        self.model = model.to(self.device).eval()
        self.bin_s = bin_s
        self.taus = torch.tensor(bin_taus(horizon, bin_s), dtype=torch.float32, device=self.device)
        self.ctx = ContextTracker()
        self.next_tick: float | None = None

    def process_audio(self, chunk: AudioChunk) -> None:
        self.ctx.add_audio(chunk)

    def process_frame(self, frame: Frame, boundaries: list[Boundary]) -> Forecast | None:
        """Returns a Forecast every bin_s of media time (on the first frame past each tick), else None."""
        self.ctx.add_frame(frame)
        self.ctx.add_cuts(boundaries)
        if self.next_tick is not None and frame.t < self.next_tick:
            return None
        self.next_tick = next_tick_after(frame.t, self.bin_s)
        return self.forecast(frame.t)

    @torch.no_grad()
    def forecast(self, t: float) -> Forecast:
        row = torch.from_numpy(self.ctx.row(t))[None].to(self.device)
        logits = self.model(bin_features(row, self.taus))[0]
        return Forecast(t=t, bin_s=self.bin_s, hazard=torch.sigmoid(logits).cpu().numpy().astype(np.float64))


def _load_weights(cfg: CutConfig) -> tuple[HazardNet, float, float]:
    path = Path(cfg.forecast_weights) if cfg.forecast_weights else WEIGHTS
    how = ("make it with `python tools/make_edits.py --out data/edits` then "
           "`python tools/train_cut_forecast.py --data data/edits --out models/weights/cut_forecast.pt`")
    if not path.exists():
        raise FileNotFoundError(f"cut forecast weights not found at {path}: {how}")
    what = "cut forecast weights"
    ck = load_checkpoint(path, what, how)  # data only: a pickle that would run code is refused
    checkpoint_fields(ck, {"n_features": int, "hidden": int, "model": dict}, what, path, how)
    if ck["n_features"] != N_FEATURES:  # trained on an older feature set: it would fail at the first tick
        raise ValueError(f"{what} at {path} take {ck['n_features']} features, this version makes "
                         f"{N_FEATURES}: {how}")
    if not 1 <= ck["hidden"] <= 4096:  # a file must not make the loader build a net of any size
        raise ValueError(f"{what} at {path}: hidden size {ck['hidden']} is outside 1..4096: {how}")
    model = HazardNet(ck["n_features"], ck["hidden"])
    load_state(model, ck["model"], what, path, how)
    for key in ("horizon", "bin_s"):
        if not isinstance(ck.get(key, 1.0), (int, float)) or not 0 < ck.get(key, 1.0) <= 600:
            raise ValueError(f"{what} at {path}: {key} = {ck[key]!r} is not a time in seconds: {how}")
    return model, float(ck.get("horizon", HORIZON_S)), float(ck.get("bin_s", BIN_S))


def load_forecaster(cfg: CutConfig | None = None, device: str | None = None) -> CutForecaster:
    """The forecaster with the shipped weights (or cfg.forecast_weights)."""
    return CutForecaster(cfg or CutConfig(), device=device)
