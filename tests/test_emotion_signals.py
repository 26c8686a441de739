"""Each emotion signal responds in the right direction on synthetic input; EMSYNC's mapping holds."""


import cv2
import numpy as np
import pytest

from cuecast.models.emotion.affect import SIGNALS, colour_stats, load_calibration, motion_energy, picture_va, standard_scores
from cuecast.models.emotion.audio import AudioFeatures, audio_arousal
from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator
from cuecast.models.emotion.va import EMOTION_VA, affect_probs, certainty, probs_from_va, top_class, va_from_probs
from cuecast.types import EKMAN6, AudioChunk, Frame


def textured(base_rgb, seed=0, shift=0, size=(180, 320)):
    rng = np.random.default_rng(seed)
    tex = np.kron(rng.integers(-30, 30, size=(size[0] // 10 + 1, size[1] // 10 + 1, 1)), np.ones((10, 10, 1)))
    tex = np.roll(tex[: size[0], : size[1]], shift, axis=1)
    return np.clip(np.array(base_rgb)[None, None, :] + tex, 0, 255).astype(np.uint8)


def run(frames_fn, seconds=4.0, fps=25.0, audio=None, cfg=None):
    """Feed a synthetic stream; return the windows (unsmoothed config unless given)."""
    est = EmotionEstimator(cfg or EmotionConfig(faces=False, smoothing_s=0.0, hysteresis=0.0))
    out = []
    n = int(seconds * fps)
    for i in range(n):
        t = i / fps
        if audio is not None and i % 5 == 0:
            est.process_audio(AudioChunk(t=t, samples=audio(t, 5 / fps), rate=22050))
        out += est.process_frame(Frame(t=t, index=i, image=frames_fn(i)))
    return out + est.flush()


def test_emsync_table_rescaled_and_weighted():
    assert np.allclose(EMOTION_VA.min(0), -0.8) and np.allclose(EMOTION_VA.max(0), 0.8)
    for i, e in enumerate(EKMAN6):  # one emotion alone maps to its own point, as in EMSYNC
        assert va_from_probs(np.eye(6)[i]) == pytest.approx(tuple(EMOTION_VA[i]))
    joy, sad = np.eye(6)[EKMAN6.index("joy")], np.eye(6)[EKMAN6.index("sadness")]
    # conflicting evidence: half joy, half sadness reads near zero valence
    v, a = va_from_probs(0.5 * joy + 0.5 * sad)
    assert abs(v) < 0.1 and a < EMOTION_VA[3, 1]
    with pytest.raises(ValueError, match="6 non-negative"):
        va_from_probs([1, 0, 0])
    p = probs_from_va(0.8, 0.45)
    assert p.sum() == pytest.approx(1) and int(np.argmax(p)) == EKMAN6.index("joy")


def test_uncertainty_is_neutral_not_negative():
    # EMSYNC's plain weighted mean puts the uniform distribution at (-0.30, +0.35): four of six are negative
    assert float(np.full(6, 1 / 6) @ EMOTION_VA[:, 0]) < -0.25
    assert va_from_probs(np.full(6, 1 / 6)) == pytest.approx((0.0, 0.0), abs=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(50):  # near-uniform distributions stay near the origin
        p = np.full(6, 1 / 6) + rng.uniform(-0.02, 0.02, 6)
        assert np.hypot(*va_from_probs(p)) < 0.1
    # a distribution that leans to joy reads positive, one that leans to sadness negative
    lean = lambda i: np.full(6, 0.14) + 0.16 * np.eye(6)[i]  # noqa: E731
    assert va_from_probs(lean(EKMAN6.index("joy")))[0] > 0.05 > -0.05 > va_from_probs(lean(EKMAN6.index("sadness")))[0]
    # the neutral share pulls towards the origin
    joy = np.eye(6)[EKMAN6.index("joy")]
    assert va_from_probs(joy, neutral=0.75) == pytest.approx(tuple(0.25 * EMOTION_VA[EKMAN6.index("joy")]))
    assert certainty(np.full(6, 1 / 6)) == pytest.approx(0.0) and certainty(joy) == pytest.approx(1.0)


def test_affect_point_near_origin_is_neutral():
    probs, neutral = affect_probs(0.0, 0.0)
    assert neutral > 0.9 and np.ptp(probs) < 0.05  # neutral, and no emotion named in particular
    assert top_class(probs, neutral) == "neutral"
    probs, neutral = affect_probs(0.7, 0.5)
    assert neutral < 0.2 and top_class(probs, neutral) == "joy"
    probs, neutral = affect_probs(-0.7, -0.7)
    assert top_class(probs, neutral) == "sadness"
    # the round trip keeps the direction and does not drift negative
    for v, a in ((0.0, 0.0), (0.2, 0.0), (-0.2, 0.0), (0.0, 0.3)):
        rv, ra = va_from_probs(*affect_probs(v, a))
        assert abs(rv) <= abs(v) + 0.02 and (rv >= -0.02 if v >= 0 else rv < 0)


def test_calm_is_not_sad_unless_unpleasant():
    """Sadness is the only low-arousal emotion in the table; distances in the table's own spreads (valence pins an
    emotion down about twice as tightly as arousal) keep a calm picture that is not unpleasant from being named
    sadness (on the plain plane it was, as the nearest point), while a calm unpleasant one still is."""
    for v in (0.0, 0.15):
        probs, neutral = affect_probs(v, -0.55)
        assert int(np.argmax(probs)) != EKMAN6.index("sadness") and top_class(probs, neutral) == "neutral", v
    probs, neutral = affect_probs(-0.6, -0.6)
    assert top_class(probs, neutral) == "sadness"


def test_colour_stats_directions():
    grey, vivid = textured((110, 110, 110)), textured((200, 60, 40))
    b_dark, s_dark, c_dark, w_dark = colour_stats(textured((40, 40, 60)))
    b_g, s_g, c_g, w_g = colour_stats(grey)
    b_v, s_v, c_v, w_v = colour_stats(vivid)
    assert b_dark < b_g
    assert s_v > s_g + 0.3 and c_v > c_g + 0.15  # Hasler & Süsstrunk colourfulness follows chroma
    assert w_v > w_g > w_dark  # red is warm, blue-ish cold


def ordinary_signals() -> dict:
    """The calibration's centre of every picture signal: what ordinary footage looks like."""
    cal = load_calibration()
    out = {k: cal.centre[k] for k in SIGNALS}
    for k, eps in cal.log_eps.items():
        out[k] = float(np.exp(out[k]) - eps)
    return out


def test_ordinary_picture_sits_at_the_origin():
    assert picture_va(**ordinary_signals()) == pytest.approx((0.0, 0.0), abs=0.2)


def test_picture_va_published_directions():
    base = ordinary_signals()
    v0, a0 = picture_va(**base)
    b = base["brightness"]
    assert picture_va(**{**base, "brightness": b + 0.15})[0] > v0 + 0.2  # Valdez & Mehrabian: brighter, more pleasant
    assert picture_va(**{**base, "brightness": b - 0.15})[0] < v0 - 0.2
    more_chroma = {**base, "saturation": base["saturation"] * 1.5, "colourfulness": base["colourfulness"] * 1.5}
    assert picture_va(**more_chroma)[1] > a0 + 0.1  # saturated, more arousing
    assert picture_va(**{**base, "motion": base["motion"] * 2})[1] > a0 + 0.2  # Hanjalic & Xu: motion
    assert picture_va(**{**base, "cut_rate": base["cut_rate"] + 1.0})[1] > a0 + 0.2  # and cut rate
    assert picture_va(**{**base, "motion": 0.0, "motion_lag": 0.0, "cut_rate": 0.0})[1] < a0 - 0.2  # a held frame: no motion on either measure


def test_darker_and_busier_keep_counting_from_a_dim_or_busy_base():
    """A darker picture reads less pleasant even when already dim, and twice the cuts or twice the motion reads
    busier even from a busy base. Brightness: the same luma step is the same pleasure step at any level (the old
    soft limit made it 0.44 of it at a night scene's luma 0.13). Motion and cut rate (log scales, no second
    squash): a doubling from a busy base keeps most of what it does from a calm one (the old squash kept 0.12 of
    it for the cut rate, 1 -> 2 cuts/s against 0.25 -> 0.5, and 0.51 for motion, 0.04 -> 0.08 against 0.01 -> 0.02)."""
    base = ordinary_signals()

    def score(**kw):
        return standard_scores(**{**base, **kw})

    mid, dim = base["brightness"], 0.13  # ordinary footage's median luma; a night scene
    step_mid = score(brightness=mid)[0] - score(brightness=mid - 0.06)[0]
    step_dim = score(brightness=dim)[0] - score(brightness=dim - 0.06)[0]
    assert step_dim == pytest.approx(step_mid, rel=0.02) and step_dim > 0.3
    for busy, calm, high, keep in (("cut_rate", 0.25, 1.0, 0.5), ("motion", 0.01, 0.04, 0.6)):
        up_calm = score(**{busy: 2 * calm})[1] - score(**{busy: calm})[1]
        up_busy = score(**{busy: 2 * high})[1] - score(**{busy: high})[1]
        assert up_busy > keep * up_calm and up_busy > 0.1, busy


def test_cut_rate_counts_from_ordinary_pace_and_keeps_counting_at_a_trailers():
    """The cut rate is centred on ordinary footage's pace (its mean log rate, ~1 cut in 8 s), not on its median, which is
    no cut at all (most ordinary windows have none): a shot held longer than usual reads calmer than ordinary footage,
    and a picture at every signal's centre does not read calm (the median-centred signal put it at A -0.19). And it has
    no soft limit: twice the cuts at a trailer's pace (2 -> 4 cuts/s) moves arousal at least as much as 0.25 -> 0.5 does
    (with the limit at 2.5 spreads it kept 0.4 of it)."""
    base, cal = ordinary_signals(), load_calibration()
    assert 1 / 12 < base["cut_rate"] < 1 / 4  # ordinary pace: a cut every 4-12 s
    arousal = lambda rate: standard_scores(**{**base, "cut_rate": rate})[1]  # noqa: E731
    assert arousal(0.0) < arousal(base["cut_rate"]) - 0.1  # a held shot is calmer than ordinary footage
    assert abs(picture_va(**base)[1]) < 0.1
    assert arousal(4.0) - arousal(2.0) >= arousal(0.5) - arousal(0.25) > 0.1
    assert cal.centre["cut_rate"] > np.log(cal.log_eps["cut_rate"]) + 0.25 * cal.scale["cut_rate"]


def test_output_keeps_its_slope_where_dark_or_still_footage_sits():
    """A night scene reads valence ~-0.6 and a near-still clip arousal ~-0.7: the same luma step there moves the
    output by at least 0.9 of what it moves an ordinary picture (tanh kept 0.64 at -0.6), while the output stays
    inside (-1, 1), keeps increasing to the ends of the luma range, and reads ordinary variation as before."""
    base = ordinary_signals()

    def v(b):
        return picture_va(**{**base, "brightness": b})[0]

    lo = min(np.linspace(0.0, base["brightness"], 2001), key=lambda b: abs(v(b) + 0.6))  # where valence is -0.6
    step = 0.01
    at_origin = v(base["brightness"] + step / 2) - v(base["brightness"] - step / 2)
    at_dark = v(lo + step / 2) - v(lo - step / 2)
    assert at_dark > 0.9 * at_origin > 0
    grid = [v(b) for b in np.linspace(0.0, 1.0, 201)]
    assert all(-1 < x < 1 for x in grid) and all(b > a for a, b in zip(grid, grid[1:]))
    # near the origin the curve is tanh's: a picture a quartile of ordinary footage off reads within 0.01 of it
    gain = load_calibration().gain[0]
    quartile = min(np.linspace(base["brightness"], 1.0, 2001),
                   key=lambda b: abs(standard_scores(**{**base, "brightness": b})[0] - 0.6745))
    assert v(quartile) == pytest.approx(np.tanh(gain * standard_scores(**{**base, "brightness": quartile})[0]), abs=0.01)


def pan_signals(speed: float, step: int = 1, n: int = 150, fps: float = 25.0, hold: int = 1, noise: float = 1.5) -> list[dict]:
    """The estimator's full windows' raw picture signals for a pan over a soft textured wall at `speed` px per frame
    (sub-pixel), with fresh sensor noise on every frame (sd `noise` levels; 1.5 like a webcam's); step 2 plays it at 2x;
    hold 2 shows each drawing on two frames (animation on twos)."""
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(np.kron(rng.integers(-40, 40, size=(20, 60, 3)), np.ones((10, 10, 1))).astype(np.float32), (0, 0), 3)
    wall = np.clip(120 + tex, 0, 255)
    est = EmotionEstimator(EmotionConfig(faces=False, audio=False, adapt_s=0.0))
    est.record_signals = True
    for k, i in enumerate(range(0, n * step, step)):
        drawn = i - i % hold
        img = cv2.warpAffine(wall, np.float32([[1, 0, -speed * drawn], [0, 1, 0]]), (320, 180), borderMode=cv2.BORDER_REFLECT)
        img = img + np.random.default_rng(i).normal(0, noise, img.shape)
        est.process_frame(Frame(t=k / fps, index=k, image=np.clip(img, 0, 255).astype(np.uint8)))
    est.flush()
    return [s for s in est.signals if s["end"] - s["start"] >= 2 - 1e-6]


def test_motion_counts_slow_movement_under_the_noise_and_keeps_fast_movement():
    """Motion blends the frame-to-frame and the 0.2 s difference (each on its own calibration), the latter weighed
    by the noise share of the former. A slow pan (0.5 px a frame) in a noisy picture: frame to frame the noise hides
    much of its doubling (alone 0.23 spreads), over 0.2 s the movement adds up (0.62), so twice the speed is a clearer
    step (0.36). A fast pan (3 px a frame): the 0.2 s difference saturates (the texture has moved past its grain: alone
    it reads no step, -0.03), the frame-to-frame one still grows (0.67) and carries the reading (0.56). A held frame
    reads calmer than the live picture with its noise."""
    cal = load_calibration()

    def reading(signals, measure=None):
        z = [cal.motion_standard(s["motion"], s["motion_lag"]) if measure is None else cal.standardise(measure, s[measure])
             for s in signals]
        return float(np.median(z))

    slow, slow2 = pan_signals(0.5), pan_signals(0.5, step=2)
    assert reading(slow2) - reading(slow) > 0.3 > reading(slow2, "motion") - reading(slow, "motion")
    fast, fast2 = pan_signals(3.0), pan_signals(3.0, step=2)
    assert reading(fast2) - reading(fast) > 0.4 > reading(fast2, "motion_lag") - reading(fast, "motion_lag")
    assert reading(pan_signals(0.0)) > cal.motion_standard(0.0, 0.0) + 0.5


def test_repeated_frames_are_not_stillness():
    """Animation on twos (each drawing on two frames, a re-encode's faint noise on each): played at 2x, every frame is
    a new drawing, so its motion reads ~2x, as a viewer sees it (read frame to frame with the repeats as zeros, the
    window's 75th percentile stayed where it was). A picture that stops holds still: it reads calmer than the pan."""
    def motion(signals):
        return float(np.median([s["motion"] for s in signals]))

    twos, twos2 = pan_signals(2.0, hold=2, noise=0.3), pan_signals(2.0, step=2, hold=2, noise=0.3)
    assert motion(twos2) > 1.7 * motion(twos)
    assert motion(pan_signals(0.0, noise=0.3)) < 0.2 * motion(twos)


def test_motion_energy_normalised_per_frame_interval():
    y0 = np.zeros((10, 10), np.float32)
    y1 = np.full((10, 10), 0.1, np.float32)
    assert motion_energy(y1, y0, 1 / 30) == pytest.approx(0.1)
    assert motion_energy(y1, y0, 2 / 30) == pytest.approx(0.05)  # a dropped frame does not double motion
    assert motion_energy(y1, None, 1 / 30) == 0.0


def test_audio_arousal_louder_brighter_busier():
    rate = 22050

    def feats(signal):
        af = AudioFeatures()
        for i in range(0, signal.size, 2048):
            af.add(i / rate, signal[i:i + 2048], rate)
        return af.window(0, signal.size / rate)

    t = np.arange(rate * 3) / rate
    quiet_low = 0.02 * np.sin(2 * np.pi * 200 * t)
    loud_low = 0.5 * np.sin(2 * np.pi * 200 * t)
    rng = np.random.default_rng(0)
    clicks = np.zeros_like(t)
    for k in range(0, t.size, rate // 6):  # 6 noise bursts per second
        clicks[k:k + 600] = rng.normal(0, 0.4, 600)
    fq, fl, fc = feats(quiet_low.astype(np.float32)), feats(loud_low.astype(np.float32)), feats(clicks.astype(np.float32))
    assert fl[0] > fq[0] + 20  # 25x amplitude = +28 dB
    assert fc[1] > fl[1] * 3  # noise bursts are brighter than a 200 Hz tone
    assert fc[2] > 4 and fl[2] < 1  # onsets per second
    assert audio_arousal(*fl) > audio_arousal(*fq) + 0.3
    assert audio_arousal(*fc) > audio_arousal(*fl)


def test_estimator_brighter_saturated_frames_raise_valence():
    dull = run(lambda i: textured((45, 45, 50), shift=i))
    vivid = run(lambda i: textured((230, 190, 60), shift=i))
    assert np.mean([w.valence for w in vivid]) > np.mean([w.valence for w in dull]) + 0.4
    assert all(w.signals == ("picture",) for w in dull)


def test_estimator_motion_and_cuts_raise_arousal_still_lowers():
    still = run(lambda i: textured((120, 110, 100)))
    moving = run(lambda i: textured((120, 110, 100), shift=7 * i))
    cutting = run(lambda i: textured((120, 110, 100) if (i // 12) % 2 else (60, 120, 200), seed=i // 12))
    a = lambda ws: np.mean([w.arousal for w in ws[4:]])  # noqa: E731  (past the first short windows)
    assert a(moving) > a(still) + 0.2
    assert a(cutting) > a(still) + 0.2


def test_estimator_audio_joins_and_raises_arousal():
    rate = 22050

    def tone(amp):
        return lambda t, d: (amp * np.sin(2 * np.pi * 300 * (t + np.arange(int(d * rate)) / rate))).astype(np.float32)

    frames = lambda i: textured((120, 110, 100), shift=i)  # noqa: E731
    quiet, loud = run(frames, audio=tone(0.01)), run(frames, audio=tone(0.6))
    assert all("audio" in w.signals for w in loud[1:])
    assert np.mean([w.arousal for w in loud]) > np.mean([w.arousal for w in quiet]) + 0.1
