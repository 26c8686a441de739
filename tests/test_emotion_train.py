"""tools/train_emotion.py trains a head from class folders of videos, and the estimator loads it."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator
from cuecast.models.emotion.fusion import load_head
from cuecast.streams.video import make_test_video
from cuecast.types import Frame

TOOL = Path(__file__).resolve().parent.parent / "tools" / "train_emotion.py"


def test_train_tool_end_to_end(tmp_path):
    data = tmp_path / "data"
    for cls, colours, motion in (("happy", [(230, 200, 90), (240, 180, 60)], 6.0),
                                 ("sad", [(30, 30, 45), (45, 40, 50)], 0.0)):
        (data / cls).mkdir(parents=True)
        for i, c in enumerate(colours):
            make_test_video(data / cls / f"{i}.mp4", [(2.0, c)], fps=15, size=(160, 90), motion=motion)
    out = tmp_path / "head.pt"
    r = subprocess.run([sys.executable, str(TOOL), str(data), "--out", str(out), "--epochs", "30", "--no-faces",
                        "--val-frac", "0.25"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "validation accuracy" in r.stdout and out.is_file()
    head = load_head(out, "cpu")
    assert "picture" in head.signals and "faces" not in head.signals
    est = EmotionEstimator(EmotionConfig(faces=False, fusion_weights=str(out)))
    ws = []
    for i in range(30):
        ws += est.process_frame(Frame(t=i / 15, index=i, image=np.full((90, 160, 3), (235, 190, 70), np.uint8)))
    ws += est.flush()
    assert ws[-1].signals[-1] == "head"


def test_train_tool_rejects_unknown_class(tmp_path):
    (tmp_path / "boredom").mkdir()
    r = subprocess.run([sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a class" in r.stderr
