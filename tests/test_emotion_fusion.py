"""The trainable fusion head: it learns, it loads into the estimator, and bad weights are clear errors."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cuecast.engine.cli import main as cli_main
from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator, analyse
from cuecast.models.emotion.fusion import DIMS, N_STEPS, FusionHead, fixed_fusion, load_head, save_head, window_steps
from cuecast.models.emotion.va import va_from_probs
from cuecast.testmedia.video import make_test_video
from cuecast.types import EKMAN6, Frame


def test_window_steps_bins_and_masks():
    from cuecast.models.emotion.affect import FrameAffect
    frames = [FrameAffect(t, 0.5, 0.3, 0.1, 0.0, 0.02) for t in np.arange(0, 1.0, 0.04)]  # first half only
    x, m = window_steps(frames, [(0.3, np.eye(6)[3], 0.0, 0.8)], [(1.5, -20.0, 2000.0, True)], [0.5], 0.0, 2.0)
    assert m["picture"].tolist() == [1] * 4 + [0] * 4
    assert m["faces"].sum() == 1 and x["faces"][1, 3] == 1 and x["faces"][1, 6] == pytest.approx(0.8)
    assert m["audio"].sum() == 1 and m["audio"][6] == 1
    assert x["picture"][2, 5] == 1  # the cut at 0.5 s falls in the third bin
    # a cut frame's motion (NaN) is left out, not spread into the bin
    frames.append(FrameAffect(1.9, 0.5, 0.3, 0.1, 0.0, float("nan")))
    x, m = window_steps(frames, [], [], [], 0.0, 2.0)
    assert np.isfinite(x["picture"]).all() and x["picture"][7, 4] == 0.0


def test_head_learns_a_separable_rule():
    torch.manual_seed(0)
    head = FusionHead()
    n = 64
    x = {k: torch.randn(n, N_STEPS, d) for k, d in DIMS.items()}
    m = {k: torch.ones(n, N_STEPS) for k in DIMS}
    y = (x["picture"][:, :, 0].mean(1) > 0).long() * EKMAN6.index("joy")  # bright -> joy, else anger
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(head(x, m), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    assert (head(x, m).argmax(1) == y).float().mean() > 0.9


def test_masked_signals_do_not_change_the_output():
    head = FusionHead().eval()
    x = {k: torch.randn(1, N_STEPS, d) for k, d in DIMS.items()}
    m = {k: torch.ones(1, N_STEPS) for k in DIMS}
    m["audio"] = torch.zeros(1, N_STEPS)
    x2 = {**x, "audio": torch.randn(1, N_STEPS, DIMS["audio"]) * 10}
    assert torch.allclose(head(x, m), head(x2, m))


def test_estimator_uses_trained_head(tmp_path):
    path = tmp_path / "head.pt"
    save_head(FusionHead(), path, ["picture"])
    est = EmotionEstimator(EmotionConfig(faces=False, fusion_weights=str(path)))
    ws = []
    for i in range(40):
        ws += est.process_frame(Frame(t=i / 20, index=i, image=np.full((90, 160, 3), 100, np.uint8)))
    ws += est.flush()
    assert ws and all("head" in w.signals for w in ws) and all(sum(w.probs) == pytest.approx(1) for w in ws)
    assert all(0.0 <= w.neutral <= 1.0 for w in ws)  # an untrained head is unsure: its uncertainty reads neutral
    assert load_head(path, "cpu").signals == ("picture",)


def test_missing_or_broken_head_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_emotion.py"):
        load_head(tmp_path / "none.pt", "cpu")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="train_emotion.py"):
        EmotionEstimator(EmotionConfig(faces=False, fusion_weights=str(tmp_path / "bad.pt")))


def test_fixed_fusion_faces_pull_towards_their_emotion():
    joy, sad = np.eye(6)[EKMAN6.index("joy")], np.eye(6)[EKMAN6.index("sadness")]
    p0, n0, v0, a0 = fixed_fusion((-0.5, -0.3), None, None)
    p1, n1, v1, a1 = fixed_fusion((-0.5, -0.3), None, (joy, 0.0, 1.0))
    assert p1[EKMAN6.index("joy")] > 0.4 > p0[EKMAN6.index("joy")] and v1 > v0 + 0.4
    # a smiling face on an ordinary picture reads as joy, a crying one as negative
    _, _, v_smile, _ = fixed_fusion((0.0, 0.0), None, (joy, 0.05, 1.0))
    _, _, v_cry, _ = fixed_fusion((0.0, 0.0), None, (sad, 0.05, 1.0))
    assert v_smile > 0.2 and v_cry < -0.2
    # a neutral face (FER's seventh class) adds to the neutral share and pulls towards the origin
    _, n_calm, v_calm, _ = fixed_fusion((0.6, 0.4), None, (np.full(6, 1 / 6), 0.95, 1.0))
    _, n_pic, v_pic, _ = fixed_fusion((0.6, 0.4), None, None)
    assert n_calm > n_pic + 0.3 and abs(v_calm) < abs(v_pic)
    _, _, _, a_loud = fixed_fusion((0.0, 0.0), 0.9, None)
    _, _, _, a_quiet = fixed_fusion((0.0, 0.0), -0.9, None)
    assert a_loud > a_quiet + 0.3


def test_a_face_moves_arousal_less_than_valence():
    """An expression is weaker evidence of arousal than of valence; motion and cuts measure it directly. A
    smiling close-up on a frozen, calm picture must not read as busy as the table's joy (+0.46 arousal): it
    moves valence by its full share and arousal by half of it."""
    joy = np.eye(6)[EKMAN6.index("joy")]
    pic = (-0.2, -0.8)  # a frozen frame: no motion, no cut
    _, _, v, a = fixed_fusion(pic, None, (joy, 0.0, 1.0))
    fv, fa = va_from_probs(joy)
    share_v = (v - pic[0]) / (fv - pic[0])
    share_a = (a - pic[1]) / (fa - pic[1])
    assert share_v > 0.45 and share_a == pytest.approx(share_v / 2, abs=1e-6) and a < 0.0


def test_fixed_fusion_reads_a_pleasant_picture_as_far_from_neutral_as_an_unpleasant_one():
    """Without faces the picture's point is the output: the Ekman table (four of six emotions negative, none
    calm and pleasant) must not pull it towards gloom; it read (+0.5, -0.6) as +0.25 and (-0.5, -0.6) as -0.61."""
    for a in (-0.6, -0.3, 0.0, 0.3, 0.6):
        for v in (0.15, 0.3, 0.5, 0.8):
            _, _, v_up, a_up = fixed_fusion((v, a), None, None)
            _, _, v_down, a_down = fixed_fusion((-v, a), None, None)
            assert v_up == pytest.approx(-v_down, abs=1e-9) and v_up > 0.9 * v and a_up == pytest.approx(a_down)


def test_emotion_command_prints_windows(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    make_test_video(clip, [(1.5, (40, 40, 60)), (1.5, (230, 200, 80))], fps=25, audio_hz=440.0)
    assert cli_main(["emotion", str(clip), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ends = [w["end"] for w in out["windows"]]
    assert ends[0] == 0.5 and np.allclose(np.diff(ends), 0.5) and ends[-1] >= 3.0
    assert all(0.0 <= w["neutral"] <= 1.0 for w in out["windows"])
    assert "audio" in out["windows"][-1]["signals"]
    assert not any("faces" in w["signals"] for w in out["windows"])  # no face in a textured test pattern
    assert out["windows"][-1]["valence"] > out["windows"][1]["valence"]  # dark, then bright and warm
    assert cli_main(["emotion", str(clip), "--no-faces"]) == 0
    assert "valence" in capsys.readouterr().out


def test_emotion_command_bad_input_is_one_line(tmp_path, capsys):
    assert cli_main(["emotion", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cuecast: error:") and "Traceback" not in err
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    assert cli_main(["emotion", str(tmp_path / "junk.mp4")]) == 2


def test_emotion_command_counts_the_cuts_the_engine_detects(tmp_path, capsys):
    """`cuecast emotion` reads the cut rate from the engine's cut detector, as a render and the calibration do. The
    estimator's histogram stand-in sees no cut between shots of the same colours, so the command used to read such a
    clip as a held shot (A -0.90 against the render's -0.61 on this one; goldeneye, issue-134 and testvideo ~0.2 calmer)."""
    from cuecast.models.cuts.config import CutConfig
    from cuecast.engine.config import SourceConfig
    from cuecast.models.cuts.detector import OnlineCutDetector
    from cuecast.streams.video import FileDecoder

    clip = tmp_path / "same_colours.mp4"
    cuts = make_test_video(clip, [(1.5, (120, 110, 100))] * 4, fps=25)  # four layouts, one palette
    frames = [f for f in FileDecoder(clip, analysis_width=SourceConfig().analysis_width, audio=False)]
    stand_in = EmotionEstimator(EmotionConfig(audio=False, faces=False))
    for f in frames:
        stand_in.process_frame(f)
    assert stand_in.cuts == []  # the case: cuts the stand-in cannot see
    engine = EmotionEstimator(EmotionConfig(audio=False, faces=False))
    want = analyse(engine, frames, OnlineCutDetector(CutConfig()))  # the engine pipeline's order
    assert len(engine.cuts) == len(cuts)
    assert cli_main(["emotion", str(clip), "--json", "--no-faces", "--no-audio"]) == 0
    got = json.loads(capsys.readouterr().out)["windows"]
    assert [w["arousal"] for w in got] == pytest.approx([w.arousal for w in want], abs=1e-4)  # JSON: 4 decimals
