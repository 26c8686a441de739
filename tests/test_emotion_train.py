"""tools/train_emotion.py trains a head from class folders of videos, and the estimator loads it."""

import importlib.util
import sys
from pathlib import Path


import numpy as np

from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator
from cuecast.models.emotion.fusion import load_head
from cuecast.testmedia.video import make_test_video
from cuecast.types import Frame

TOOL = Path(__file__).resolve().parent.parent / "tools" / "train_emotion.py"


def run_tool(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the tool's main() in this process (a subprocess would pay torch's import again)."""
    spec = importlib.util.spec_from_file_location("train_emotion", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", ["train_emotion.py", *map(str, args)])
    try:
        code = mod.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_tool_end_to_end(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    for cls, colours, motion in (("happy", [(230, 200, 90), (240, 180, 60)], 6.0),
                                 ("sad", [(30, 30, 45), (45, 40, 50)], 0.0)):
        (data / cls).mkdir(parents=True)
        for i, c in enumerate(colours):
            make_test_video(data / cls / f"{i}.mp4", [(2.0, c)], fps=15, size=(160, 90), motion=motion)
    out = tmp_path / "head.pt"
    code, stdout, stderr = run_tool(monkeypatch, capsys, data, "--out", out, "--epochs", "30", "--no-faces",
                                    "--val-frac", "0.25")
    assert code == 0, stderr
    assert "validation accuracy" in stdout and out.is_file()
    head = load_head(out, "cpu")
    assert "picture" in head.signals and "faces" not in head.signals
    est = EmotionEstimator(EmotionConfig(faces=False, fusion_weights=str(out)))
    ws = []
    for i in range(30):
        ws += est.process_frame(Frame(t=i / 15, index=i, image=np.full((90, 160, 3), (235, 190, 70), np.uint8)))
    ws += est.flush()
    assert ws[-1].signals[-1] == "head"


def test_train_tool_rejects_unknown_class(tmp_path, monkeypatch, capsys):
    (tmp_path / "boredom").mkdir()
    code, _, stderr = run_tool(monkeypatch, capsys, tmp_path)
    assert code != 0 and "not a class" in stderr
