"""Windows tile the input at the configured hop, and smoothing follows a real change within seconds."""

import numpy as np
import pytest

from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator, Smoother
from cuecast.types import Frame


def flat(rgb):
    rng = np.random.default_rng(1)
    return np.clip(np.array(rgb)[None, None] + rng.integers(-20, 20, (90, 160, 3)), 0, 255).astype(np.uint8)


def feed(est, times, image_at):
    out = []
    for i, t in enumerate(times):
        ws = est.process_frame(Frame(t=t, index=i, image=image_at(t)))
        assert all(w.end <= t + 1e-9 for w in ws)  # a window is emitted only once its end has been seen
        out += ws
    return out + est.flush()


@pytest.mark.parametrize("window,hop", [(2.0, 0.5), (1.0, 1.0), (3.0, 0.25)])
def test_windows_cover_input_at_hop(window, hop):
    cfg = EmotionConfig(faces=False, window_s=window, hop_s=hop)
    times = np.arange(0, 7.3, 1 / 29.97)
    ws = feed(EmotionEstimator(cfg), times, lambda t: flat((100, 100, 100)))
    ends = np.array([w.end for w in ws])
    assert np.allclose(np.diff(ends), hop)
    assert ends[0] == pytest.approx(hop)
    assert ws[-1].start <= times[-1] < ws[-1].end  # the tail is covered
    assert all(w.end - w.start == pytest.approx(min(window, w.end)) for w in ws)
    for w in ws:
        assert sum(w.probs) == pytest.approx(1.0) and -1 <= w.valence <= 1 and -1 <= w.arousal <= 1


def test_irregular_timestamps_and_gaps():
    # variable frame rate, a 3 s gap (dropped frames), timestamps not starting at zero
    times = np.concatenate([np.arange(0.4, 2.0, 0.033), np.arange(5.0, 6.0, 0.05)])
    ws = feed(EmotionEstimator(EmotionConfig(faces=False)), times, lambda t: flat((100, 100, 100)))
    ends = np.array([w.end for w in ws])
    assert ends[0] == pytest.approx(0.5) and np.allclose(np.diff(ends), 0.5) and ends[-1] == pytest.approx(6.0)


def test_smoothing_follows_step_within_seconds_and_ignores_wobble():
    cfg = EmotionConfig(faces=False, smoothing_s=2.0)
    times = np.arange(0, 16, 1 / 25)
    dark, bright = flat((25, 25, 35)), flat((235, 215, 120))
    ws = feed(EmotionEstimator(cfg), times, lambda t: dark if t < 8 else bright)
    v = {round(w.end, 2): w.valence for w in ws}
    v_before, v_after = v[8.0], v[16.0]
    assert v_after - v_before > 0.6
    # within 3 s of the change the output has covered most of the way
    assert v[11.0] - v_before > 0.7 * (v_after - v_before)
    # but it does not jump in one window
    assert v[8.5] - v_before < 0.6 * (v_after - v_before)


def test_hysteresis_holds_small_wobble():
    sm = Smoother(tau=1.0, band=0.05)
    probs = np.full(6, 1 / 6)
    outs = [sm(probs, np.array([0.2 + 0.03 * (-1) ** k, 0.0]), 0.5, False)[1][0] for k in range(40)]
    assert np.ptp(outs[10:]) == 0.0  # +-0.03 wobble never leaves the 0.05 band
    # two classes within a few hundredths of each other, swapping: the dominant one holds
    sm3 = Smoother(tau=0.5, band=0.05)
    tops = []
    for k in range(40):
        p = np.array([0.44, 0.4, 0.04, 0.04, 0.04, 0.04]) if k % 2 else np.array([0.4, 0.44, 0.04, 0.04, 0.04, 0.04])
        tops.append(int(np.argmax(sm3(p, np.zeros(2), 0.5, False)[0])))
    assert len(set(tops[2:])) == 1
    sm2 = Smoother(tau=0.0, band=0.0)
    sm2(probs, np.zeros(2), 0.5, False)
    assert sm2(probs, np.array([0.5, 0.0]), 0.5, False)[1][0] == pytest.approx(0.5)


def test_smoothing_does_not_hold_a_streams_first_short_window():
    """A stream's first windows cover 0.5 s, 1 s, 1.5 s of it. A plain EMA started on the first one counted it as if
    it had been seen forever: a 0.5 s window before the first cut (cut rate 0) held a 3 s clip's arousal near it
    (-0.37 of it after four more windows here). The average is the exponentially weighted mean of the windows seen,
    each weighed by the share of a window its frames cover; once the windows are full it is the plain EMA."""
    probs = np.full(6, 1 / 6)
    sm = Smoother(tau=2.0, band=0.0)
    sm(probs, np.array([0.0, -1.0]), 0.5, False, 0.25)  # the first 0.5 s: no cut seen yet
    for cover in (0.5, 0.75, 1.0, 1.0):
        out = sm(probs, np.array([0.0, 0.0]), 0.5, False, cover)[1]
    assert -0.1 < out[1] < 0.0
    # steady state: the plain EMA (alpha = 1 - exp(-hop / tau)), halved tau after a cut as before; the probabilities
    # always follow it (valence and arousal follow a steady change faster: test_smoothing_follows_a_steady_change_faster)
    for _ in range(60):
        sm(probs, np.zeros(2), 0.5, False)
    joy = np.eye(6)[3]
    p = 1 / 6 + (5 / 6) * (1 - np.exp(-0.25))
    assert sm(joy, np.zeros(2), 0.5, False)[0][3] == pytest.approx(p, abs=1e-3)
    assert sm(joy, np.zeros(2), 0.5, True)[0][3] == pytest.approx(p + (1 - p) * (1 - np.exp(-0.5)), abs=1e-3)


def test_smoothing_follows_a_steady_change_faster():
    """A fixed time constant trades lag for calm. Each of valence and arousal follows a change that keeps going one way
    faster (the 1-euro filter's adaptive cut-off, per axis), while wobble about a steady reading gets the plain EMA's
    calm, and an axis that holds still is not hurried by the other one moving."""
    probs = np.full(6, 1 / 6)
    hop, tau = 0.5, 2.0

    def run(valence, arousal, follow_rate=EmotionConfig.follow_rate):
        sm = Smoother(tau=tau, band=0.0, follow_rate=follow_rate)
        return np.array([sm(probs, np.array([v, a]), hop, False)[1] for v, a in zip(valence, arousal)])

    # a scene turning dark (or busy): its 2 s windows read a ramp over four hops, then hold
    ramp = np.concatenate([np.zeros(10), np.linspace(0.15, 0.6, 4), np.full(16, 0.6)])
    still = np.full_like(ramp, 0.3)
    plain = plain_ema(ramp, hop, tau)
    reach = lambda out: int(np.argmax(out >= 0.9 * 0.6)) - 10  # hops after the change began to 90% of the way
    for axis, got in ((0, run(ramp, still)), (1, run(still, ramp))):
        assert reach(got[:, axis]) <= reach(plain) - 3  # at least 1.5 s sooner
        assert np.all(got[:, axis] <= 0.6 + 1e-9)  # no overshoot
        assert got[:, 1 - axis] == pytest.approx(0.3)  # the other axis holds
    fixed = run(ramp, ramp, follow_rate=0.0)  # 0: a fixed time constant, the same on both axes
    assert fixed[:, 0] == pytest.approx(fixed[:, 1]) and reach(fixed[:, 0]) >= reach(plain) - 1
    # wobble of the same size about a steady reading: as calm as the plain EMA
    wobble = 0.3 + 0.15 * (-1.0) ** np.arange(40)
    assert np.ptp(run(wobble, wobble)[20:, 0]) < 1.1 * np.ptp(plain_ema(wobble, hop, tau)[20:])


def plain_ema(x, hop, tau):
    out = np.zeros_like(x)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = out[i - 1] + (1 - np.exp(-hop / tau)) * (x[i] - out[i - 1])
    return out


def test_observe_cut_switches_to_external_cuts():
    est = EmotionEstimator(EmotionConfig(faces=False))
    feed(est, np.arange(0, 3, 0.04), lambda t: flat((100, 100, 100)) if (t // 0.5) % 2 else flat((20, 160, 40)))
    assert len(est.cuts) >= 4  # the internal detector saw the colour jumps
    est.observe_cut(3.1)
    assert list(est.cuts) == [3.1]


def test_stand_in_cut_detector_does_not_count_a_fade_but_counts_a_card_switch():
    """A flat field fading to white crosses three edges of the colour histogram's bins; each crossing jumped the
    histogram as a cut does (fades.mp4 read ~1.8 cuts/s while the engine's detector saw none). A fade moves every pixel
    and channel by one offset, so it is not a cut; a switch between flat cards of different hue at about the same
    luma (counter.mp4) moves the channels differently and still is one, and so is a change of picture."""
    fade = EmotionEstimator(EmotionConfig(faces=False))
    feed(fade, np.arange(0, 3.2, 0.04), lambda t: flat((min(255, int(80 * t)),) * 3))
    assert fade.cuts == []
    cards = EmotionEstimator(EmotionConfig(faces=False))
    feed(cards, np.arange(0, 3, 0.04), lambda t: flat((90, 95, 110)) if (t // 1.0) % 2 == 0 else flat((140, 90, 85)))
    assert len(cards.cuts) == 2
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), rng.integers(0, 120, (180, 320, 3), dtype=np.uint8)
    scenes = EmotionEstimator(EmotionConfig(faces=False))
    feed(scenes, np.arange(0, 2, 0.04), lambda t: a if t < 1.0 else b)
    assert len(scenes.cuts) == 1
    # a cut from a bright shot to a dark one is mostly one offset too, but the picture is new: still a cut; the same
    # shot made darker (an exposure change) is not
    day, night = soft_picture(1, 180, 30), soft_picture(2, 40, 15)
    for after, cuts in ((night, 1), ((day * 0.6).astype(np.uint8), 0)):
        est = EmotionEstimator(EmotionConfig(faces=False))
        feed(est, np.arange(0, 2, 0.04), lambda t, after=after: day if t < 1.0 else after)
        assert len(est.cuts) == cuts


def soft_picture(seed: int, mean: float, spread: float) -> np.ndarray:
    """A picture of soft shapes (blurred noise): structure without the pixel noise a random image is all made of."""
    import cv2

    base = cv2.GaussianBlur(np.random.default_rng(seed).random((180, 320, 3)).astype(np.float32), (0, 0), 12)
    return np.clip(mean + spread * (base - base.mean()) / base.std(), 0, 255).astype(np.uint8)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="hop_s"):
        EmotionEstimator(EmotionConfig(faces=False, hop_s=5.0, window_s=2.0))


def test_long_gap_is_skipped_not_filled():
    est = EmotionEstimator(EmotionConfig(faces=False))
    times = np.concatenate([np.arange(0, 2, 0.04), np.arange(1000, 1002, 0.04)])
    ws = feed(est, times, lambda t: flat((100, 100, 100)))
    assert len(ws) < 20  # not the ~2000 windows of the gap
    late = [w for w in ws if w.end > 900]
    assert late[0].end <= 1000.0 + 1e-9 < late[0].end + 2.0 and late[-1].start <= times[-1] < late[-1].end


def test_cuts_observed_out_of_order_feed_the_cut_rate():
    est = EmotionEstimator(EmotionConfig(faces=False))
    for t in (2.0, 1.0, 3.0, 2.0):
        est.observe_cut(t)
    assert est.cuts == [1.0, 2.0, 3.0]
    assert est._cut_rate(4.0) == pytest.approx(3 / 4.0)  # 3 cuts over the 4 s seen so far (t_first = 0)


def test_window_ends_do_not_drift_over_long_runs():
    est = EmotionEstimator(EmotionConfig(faces=False, hop_s=0.1, window_s=0.5))
    est.process_frame(Frame(t=0.0, index=0, image=flat((90, 90, 90))))
    ws = est.process_frame(Frame(t=3600.0, index=1, image=flat((90, 90, 90))))
    assert ws[-1].end == 3600.0  # k * hop, not a sum of 36000 hops


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        EmotionEstimator(EmotionConfig(faces=False, device="cuda"))
