"""The cut forecaster: shapes, sanity, the shipped weights against a constant-rate baseline."""

import numpy as np
import pytest
import torch

from cuecast.models.cuts.config import CutConfig
from cuecast.models.cuts.detector import OnlineCutDetector
from cuecast.models.cuts.forecast import (N_FEATURES, OnsetEnvelope, bin_features, bin_taus,
                                          constant_rate_hazard, load_forecaster, survival_nll, CTX)
from cuecast.models.cuts.forecast_data import one_step_ll, predicted_time, targets
from cuecast.testmedia.cuts import Shot, render
from cuecast.types import AudioChunk, Forecast, Frame


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_features_and_loss_shapes():
    ctx = torch.rand(5, len(CTX))
    taus = torch.tensor(bin_taus(), dtype=torch.float32)
    f = bin_features(ctx, taus)
    assert f.shape == (5, len(taus), N_FEATURES) and torch.isfinite(f).all()
    logits = torch.zeros(3, 4)  # hazard 0.5 everywhere
    nll = survival_nll(logits, torch.tensor([0, 2, 4]))
    ln2 = np.log(2)
    assert torch.allclose(nll, torch.tensor([ln2, 3 * ln2, 4 * ln2], dtype=torch.float32))  # cut in bin 0, bin 2, censored


def test_onset_envelope_finds_the_beat():
    rate, bpm = 22050, 132.0
    env = OnsetEnvelope(rate)
    x = 0.01 * np.random.default_rng(0).standard_normal(rate * 8).astype(np.float32)
    beats = np.arange(0.3, 8, 60 / bpm)
    for b in beats:
        i = int(b * rate)
        x[i:i + 300] += np.exp(-np.arange(300) / 60).astype(np.float32)
    for i in range(0, len(x), 1500):
        env.add(AudioChunk(t=i / rate, samples=x[i:i + 1500], rate=rate))
    period, anchor, conf = env.beat()
    assert period == pytest.approx(60 / bpm, rel=0.02)
    assert np.min(np.abs(beats - anchor)) < 0.03 and conf > 0.3


def test_missing_and_broken_weights_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_edits"):
        load_forecaster(CutConfig(device="cpu", forecast_weights=str(tmp_path / "none.pt")))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="train_cut_forecast"):
        load_forecaster(CutConfig(device="cpu", forecast_weights=str(bad)))
    from cuecast.models.cuts.forecast import HazardNet

    old = tmp_path / "old.pt"  # weights of an older feature set
    torch.save({"model": HazardNet(N_FEATURES - 7, 8).state_dict(), "n_features": N_FEATURES - 7, "hidden": 8}, old)
    with pytest.raises(ValueError, match="features.*train_cut_forecast"):
        load_forecaster(CutConfig(device="cpu", forecast_weights=str(old)))


def run_edit(shots, fps=25.0, seed=0):
    """Detector + shipped forecaster over a synthetic edit, as the engine runs them."""
    imgs, times, truth = render(shots, fps=fps, size=(96, 54), seed=seed)
    det, fc = OnlineCutDetector(CutConfig(device="cpu")), load_forecaster(CutConfig(device="cpu"))
    forecasts, labels = [], []
    for i, (im, t) in enumerate(zip(imgs, times)):
        fr = Frame(t=t, index=i, image=im)
        new = det.process_frame(fr)
        labels += [b.t for b in new]
        f = fc.process_frame(fr, new)
        if f is not None:
            forecasts.append((f, fc.ctx.row(t)))
    return forecasts, labels, truth


def test_forecasts_shape_and_monotonic():
    forecasts, labels, truth = run_edit([Shot(2.0, seed=k) for k in range(6)])
    assert len(labels) == 5
    ts = [f.t for f, _ in forecasts]
    # one forecast per 0.1 s tick, on the first frame past it (frames every 0.04 s)
    assert all(0.06 <= b - a <= 0.14 for a, b in zip(ts, ts[1:]))
    for f, _ in forecasts:
        assert isinstance(f, Forecast) and f.hazard.shape == (40,) and f.bin_s == pytest.approx(0.1)
        assert np.all((f.hazard > 0) & (f.hazard < 1))
        ps = [f.probability_by(h) for h in (0.5, 1.0, 2.0, 4.0)]
        assert ps == sorted(ps)


def test_steady_edit_beats_constant_rate_and_anticipates():
    forecasts, labels, truth = run_edit([Shot(1.6, seed=10 + k) for k in range(12)], seed=3)
    ctx = np.stack([r for _, r in forecasts])
    tgt, _ = targets(ctx, np.array(labels), 40)
    h_model = np.array([f.hazard[0] for f, _ in forecasts])
    h_base = constant_rate_hazard(torch.from_numpy(ctx), 40).numpy()[:, 0]
    assert one_step_ll(h_model, tgt) > one_step_ll(h_base, tgt) + 0.5 * len(labels)  # > 0.5 nats per cut
    # with the rhythm established, the forecast 0.5 s before a cut points at it
    late = [c for c in labels if c > 6.0]
    hits = 0
    for c in late:
        f, _ = max(((f, r) for f, r in forecasts if f.t <= c - 0.5), key=lambda x: x[0].t)
        hits += abs(predicted_time(f.hazard, f.t, f.bin_s) - c) <= 0.15
    assert hits >= 0.7 * len(late)


def test_replay_rebuilds_the_recorded_rows():
    """make_edits records the signals behind every context row; replaying them gives the same rows."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import make_edits
    from cuecast.models.cuts.forecast_data import replay

    imgs, _, truth = render([Shot(1.2, seed=60 + k) for k in range(6)], fps=25.0, size=(96, 54))
    audio = make_edits.beat_track(len(imgs) / 25.0, 125.0, 0.1, np.random.default_rng(0))
    rec = make_edits.play(imgs, audio, 25.0)
    assert len(rec["labels"]) == len(truth["hard"]) and rec["sig_has_audio"].all()
    np.testing.assert_array_equal(replay(rec), rec["ctx"])


def test_on_beat_tells_edits_that_follow_the_music():
    from cuecast.models.cuts.forecast import on_beat

    per, anchor = 0.5, torch.tensor([[0.1]])
    on = torch.tensor([[1.0, 2.0, 1.0, 1.5, 2.0, 1.0, 0.5, 1.0]])  # whole beats apart
    off = torch.tensor([[1.13, 0.71, 1.37, 0.92, 1.61, 0.58, 1.24, 0.83]])
    have = torch.ones_like(on)
    last = torch.tensor([[30.1]])  # on a beat (anchor + 60 beats)
    assert float(on_beat(last, on, have, anchor, torch.tensor([[per]]))) > 0.95
    assert float(on_beat(last, off, have, anchor, torch.tensor([[per]]))) < 0.4
    assert float(on_beat(last, on, torch.zeros_like(have), anchor, torch.tensor([[per]]))) == 0.0  # no history
