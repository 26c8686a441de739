"""Ordinary footage reads as ordinary (neutral, valence near 0), and a strongly coloured passage moves the music.

The render check uses tools/eval_emotion.py's passage_over_seeds (the same code as the BENCHMARKS evaluation)
on synthetic media made here: calm, daylight-coloured shots around a dark, cold passage cut every 0.5 s.
"""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cuecast.models.emotion.affect import CALIBRATION, load_calibration
from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator
from cuecast.models.emotion.va import top_class
from cuecast.types import Frame

TOOL = Path(__file__).resolve().parent.parent / "tools" / "eval_emotion.py"
DAYLIGHT = (128, 120, 104)  # near the calibration's centre (mean luma 0.44): an overcast day, mild warmth and chroma


def eval_tool():
    spec = importlib.util.spec_from_file_location("eval_emotion", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scene(rgb, seed, size=(180, 320)):
    """A soft texture around a colour (real pictures have few pixel-sharp edges; sharp noise panning reads as busy)."""
    rng = np.random.default_rng(seed)
    tex = np.kron(rng.integers(-40, 40, size=(size[0] // 10 + 1, size[1] // 10 + 1, 3)), np.ones((10, 10, 1)))
    tex = cv2.GaussianBlur(tex[: size[0], : size[1]].astype(np.float32), (0, 0), 3)
    return np.clip(np.array(rgb)[None, None] + tex, 0, 255).astype(np.uint8)


def windows_of(image_at, seconds=12.0, fps=25.0):
    est = EmotionEstimator(EmotionConfig(faces=False, audio=False))
    ws = []
    for i in range(int(seconds * fps)):
        ws += est.process_frame(Frame(t=i / fps, index=i, image=image_at(i)))
    return ws + est.flush()


def test_ordinary_daylight_shot_reads_neutral():
    base = scene(DAYLIGHT, 0)
    ws = windows_of(lambda i: np.roll(base, i, axis=1))  # a slow pan: ordinary motion
    late = ws[4:]
    assert abs(np.mean([w.valence for w in late])) < 0.25
    assert np.mean([w.neutral for w in late]) > 0.5
    assert top_class(np.mean([w.probs for w in late], axis=0), float(np.mean([w.neutral for w in late]))) == "neutral"
    assert all(abs(sum(w.probs) - 1) < 1e-6 and 0 <= w.neutral <= 1 for w in ws)


def test_neutral_share_in_json_and_contrast_kept():
    base = scene(DAYLIGHT, 1)
    calm = windows_of(lambda i: np.roll(base, i, axis=1))
    dark_cut = windows_of(lambda i: np.roll(scene((35, 38, 62), i // 12), 4 * i, axis=1))  # dark, cold, a cut every 0.5 s
    bright = windows_of(lambda i: np.roll(scene((235, 205, 120), 2), i, axis=1))
    v = lambda ws: float(np.mean([w.valence for w in ws[4:]]))  # noqa: E731
    a = lambda ws: float(np.mean([w.arousal for w in ws[4:]]))  # noqa: E731
    n = lambda ws: float(np.mean([w.neutral for w in ws[4:]]))  # noqa: E731
    assert v(bright) > v(calm) + 0.2 and v(calm) > v(dark_cut) + 0.2
    assert a(dark_cut) > a(calm) + 0.2
    assert n(calm) > n(dark_cut) + 0.3  # a strong picture is not neutral
    js = calm[-1].to_json()
    assert set(js["probs"]) == {"anger", "disgust", "fear", "joy", "sadness", "surprise"} and 0 <= js["neutral"] <= 1
    json.dumps(js)


def test_calibration_file_is_data_and_errors_are_clear(tmp_path):
    cal = load_calibration()
    assert min(cal.gain) > 0 and all(s > 0 for s in cal.scale.values())
    with pytest.raises(FileNotFoundError, match="calibrate_emotion.py"):
        EmotionEstimator(EmotionConfig(faces=False, calibration=str(tmp_path / "none.json")))
    bad = tmp_path / "bad.json"
    bad.write_text('{"signals": {}}')
    with pytest.raises(ValueError, match="calibrate_emotion.py"):
        EmotionEstimator(EmotionConfig(faces=False, calibration=str(bad)))
    # one made before the cut rate was read on a log scale would be read unbounded: refused, with the fix
    linear = json.loads(CALIBRATION.read_text())
    linear["signals"]["cut_rate"] = {"centre": 0.0, "scale": 0.2471}
    bad.write_text(json.dumps(linear))
    with pytest.raises(ValueError, match="cut_rate not on a log scale.*calibrate_emotion.py"):
        EmotionEstimator(EmotionConfig(faces=False, calibration=str(bad)))
    # one whose cut rate is centred on its median (no cut at all) would read every cut count a step off: refused
    median = json.loads(CALIBRATION.read_text())
    del median["signals"]["cut_rate"]["centre_on"]
    bad.write_text(json.dumps(median))
    with pytest.raises(ValueError, match="cut_rate centred on its median.*calibrate_emotion.py"):
        EmotionEstimator(EmotionConfig(faces=False, calibration=str(bad)))
    # a calibration centred on dark footage reads the same picture as brighter than the shipped one does
    data = json.loads(CALIBRATION.read_text())
    data["signals"]["brightness"]["centre"] -= 0.2
    dark_centred = tmp_path / "dark.json"
    dark_centred.write_text(json.dumps(data))
    img = scene(DAYLIGHT, 3)

    def mean_v(path):
        est = EmotionEstimator(EmotionConfig(faces=False, audio=False, calibration=path))
        ws = []
        for i in range(100):
            ws += est.process_frame(Frame(t=i / 25, index=i, image=img))
        return float(np.mean([w.valence for w in ws]))

    assert mean_v(str(dark_centred)) > mean_v("") + 0.2


def test_dark_fast_cut_passage_changes_mode_and_density_and_comes_back(tmp_path):
    """Renders (the default generator, five seeds: the medians of five sampling paths) of calm daylight shots, a dark
    cold passage cut every 0.5 s, calm shots again."""
    tool = eval_tool()
    video = tmp_path / "passage.mp4"
    span, duration = tool.synthetic_passage(video)
    res = tool.passage_over_seeds(video, span, duration)
    before, passage, after = res["before"], res["passage"], res["after"]
    assert passage["valence"] < min(before["valence"], after["valence"]) - 0.3
    assert passage["arousal"] > max(before["arousal"], after["arousal"]) + 0.2
    assert res["mode_lower"] and res["mode_drop"] > 0.1, res  # minor-ish in the passage, major-ish around it
    assert res["denser"] and res["density_ratio"] > 1.2, res
    # and it comes back: the calm sections after the passage read like the ones before it
    assert abs(after["valence"] - before["valence"]) < 0.25


def test_stream_adaptation_is_bounded_and_changes_still_move():
    """A stream that stays dark drifts towards neutral (the prior and the bound keep it darker than
    ordinary footage), and a change in the picture still moves it by more than the margin."""
    dark = scene((60, 58, 70), 4)
    ordinary = scene(DAYLIGHT, 5)

    def run(adapt_s, seconds, fps=5.0):
        est = EmotionEstimator(EmotionConfig(faces=False, audio=False, adapt_s=adapt_s))
        ws = []
        for i in range(int(seconds * fps)):
            img = dark if i / fps < seconds - 20 else ordinary  # the last 20 s: back to ordinary daylight
            ws += est.process_frame(Frame(t=i / fps, index=i, image=np.roll(img, i, axis=1)))
        return ws + est.flush(), est

    fixed, _ = run(0.0, 320.0)
    adapted, est = run(120.0, 320.0)
    v = lambda ws, lo, hi: float(np.mean([w.valence for w in ws if lo <= w.end < hi]))  # noqa: E731
    early_fixed, late_fixed = v(fixed, 5, 15), v(fixed, 280, 300)
    early_adapted, late_adapted = v(adapted, 5, 15), v(adapted, 280, 300)
    assert early_fixed < -0.3 and abs(early_adapted - early_fixed) < 0.1  # a short clip is all but untouched
    assert late_adapted > late_fixed + 0.1  # minutes of the same dark picture: nearer neutral ...
    assert late_adapted < v(adapted, 306, 321) - 0.2  # ... and still darker than the ordinary picture after it
    assert abs(late_fixed - early_fixed) < 0.05  # without adaptation, the same picture reads the same
    assert np.all(np.abs(est.norm.shift()) <= 0.75 + 1e-9)


def test_eval_tells_a_treatment_that_did_not_change_the_picture_from_one_that_did():
    """Doubling the speed of a held still frame changes nothing in the picture: the eval measures its input
    change below NO_EFFECT (so the check is counted apart); doubling a panning shot's speed is a real change."""
    tool = eval_tool()
    cfg = EmotionConfig(faces=False, audio=False, adapt_s=0.0)
    still = scene(DAYLIGHT, 3, size=(180, 800))
    held = [Frame(t=i / 25, index=i, image=still[:, :320]) for i in range(150)]
    pan = [Frame(t=i / 25, index=i, image=still[:, 3 * i: 3 * i + 320]) for i in range(150)]  # 75 px/s
    for frames, moves in ((held, False), (pan, True)):
        v = tool.variants(frames)
        _, z1, _ = tool.run_inputs(v["original"], cfg)
        _, z2, _ = tool.run_inputs(v["sped_up_2x"], cfg)
        change = max(z2[k] - z1[k] for k in tool.INPUTS["faster_higher_arousal"])
        assert (change >= tool.NO_EFFECT) == moves, (moves, change)


def test_eval_tells_a_silent_track_made_quieter_from_a_sound_made_quieter():
    """The sound check's treatment (x0.05, 26 dB) on a digitally silent track changes nothing the estimator
    hears: its loudness change is under NO_EFFECT_DB, so the check is counted apart; on a real sound it is 26 dB."""
    from cuecast.types import AudioChunk
    tool = eval_tool()
    rate = 22050
    t = np.arange(rate) / rate
    for samples, real in ((np.zeros(rate, np.float32), False), ((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), True)):
        audio = [AudioChunk(k * 0.25, samples[int(k * 0.25 * rate): int((k + 1) * 0.25 * rate)], rate) for k in range(4)]
        quiet = [AudioChunk(c.t, c.samples * 0.05, c.rate) for c in audio]
        change = tool.loudness_db(audio) - tool.loudness_db(quiet)
        assert (change >= tool.NO_EFFECT_DB) == real and (not real or change == pytest.approx(26.0, abs=0.1)), change


def test_eval_summary_names_the_same_most_common_top_class_on_a_tie():
    """Two Ekman classes top two clips each: the summary names the first by name, whatever order the rows come in
    (it took a set's order, which follows the per-process string hash, so the BENCHMARKS line changed between runs)."""
    tool = eval_tool()
    rows = [{"clip": f"c{i}", "top": top, "top_ekman": top, "valence": 0.0, "arousal": 0.0, "neutral": 0.2}
            for i, top in enumerate(("surprise", "joy", "surprise", "joy", "neutral"))]
    for order in (rows, rows[::-1], rows[1:] + rows[:1]):
        summ = tool.summary(order, 0.2)
        assert summ["most_common_ekman_top"] == "joy"
        assert summ["most_common_ekman_top_share"] == 0.4
