"""The face path: the torch port computes the Keras model, a real smiling photo is joy, errors are clear."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.estimator import EmotionEstimator
from cuecast.models.emotion.faces import FaceExpressions, faces_to_ekman, face_weight
from cuecast.models.emotion.fer_net import FER_CLASSES, WEIGHTS, load_fer_net
from cuecast.models.emotion.va import top_class
from cuecast.types import EKMAN6, Frame

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def astronaut():
    # NASA photo, public domain (see tests/data/README.md)
    return cv2.cvtColor(cv2.imread(str(DATA / "astronaut_nasa.jpg")), cv2.COLOR_BGR2RGB)


def test_port_matches_numpy_keras_reference():
    ref = np.load(DATA / "fer_reference.npz")
    net = load_fer_net("cpu")
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(ref["crops"])[:, None]), 1).numpy()
    assert np.abs(got - ref["probs"]).max() < 1e-4
    # crop 0 is the smiling NASA face: the original Keras graph (numpy forward) and the port both say happy
    assert FER_CLASSES[int(ref["probs"][0].argmax())] == "happy" == FER_CLASSES[int(got[0].argmax())]
    assert ref["probs"][1:].max() < 0.9  # the random crops are not all one confident class


def test_smiling_photo_is_found_and_joy(astronaut):
    fe = FaceExpressions("cpu")
    faces = fe(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 80 < x + w / 2 < 150 and 40 < y + h / 2 < 110  # her face, upper middle of the picture
    assert FER_CLASSES[int(np.argmax(faces[0].probs7))] == "happy"
    probs, neutral, weight = faces_to_ekman(faces)
    assert EKMAN6[int(np.argmax(probs))] == "joy" and weight > 0.3 and neutral < 0.2


def test_no_face_in_plain_picture():
    fe = FaceExpressions("cpu")
    assert fe(np.full((180, 320, 3), 128, np.uint8)) == []
    assert faces_to_ekman([]) is None


def test_larger_faces_weigh_more():
    assert face_weight(0.002) < face_weight(0.01) < face_weight(0.2) == 1.0


def test_estimator_with_smiling_face_leans_joy(astronaut):
    def last_window(frame, faces):
        est = EmotionEstimator(EmotionConfig(faces=faces, smoothing_s=0.0))
        ws = []
        for i in range(50):
            ws += est.process_frame(Frame(t=i / 25, index=i, image=frame))
        ws += est.flush()
        assert all(("faces" in w.signals) == faces for w in ws)
        return ws[-1]

    # her face on an ordinary mid-grey surround: the picture alone reads neutral, with her smile joy
    ordinary = np.full((180, 320, 3), 118, np.uint8)
    ordinary[:, 70:250] = cv2.resize(astronaut, (180, 180))
    with_faces, without = last_window(ordinary, True), last_window(ordinary, False)
    assert top_class(with_faces.probs, with_faces.neutral) == "joy"
    assert top_class(without.probs, without.neutral) != "joy"
    assert with_faces.valence > without.valence + 0.25 and with_faces.valence > 0.2
    # on a black surround the picture reads dark, and the smile still lifts it clearly
    dark = np.zeros((180, 320, 3), np.uint8)
    dark[:, 70:250] = cv2.resize(astronaut, (180, 180))
    with_faces, without = last_window(dark, True), last_window(dark, False)
    assert with_faces.valence > without.valence + 0.25
    assert with_faces.probs[EKMAN6.index("joy")] > without.probs[EKMAN6.index("joy")] + 0.25


def test_missing_weights_say_how_to_make_them(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="tools/port_fer.py"):
        load_fer_net("cpu", tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="tools/port_fer.py"):
        EmotionEstimator(EmotionConfig(face_weights=str(tmp_path / "nope.pt")))
    # and through the command: one line, exit code 2, no traceback
    from cuecast.engine.cli import main as cli_main
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[emotion]\nface_weights = "{tmp_path / "nope.pt"}"\n')
    assert cli_main(["emotion", str(DATA / "astronaut_nasa.jpg"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "port_fer.py" in err and "Traceback" not in err and err.count("\n") == 1


def test_broken_weights_say_how_to_make_them(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(WEIGHTS.read_bytes()[:1000])
    with pytest.raises(ValueError, match="tools/port_fer.py"):
        load_fer_net("cpu", bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"head.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="broken"):
        load_fer_net("cpu", wrong)
