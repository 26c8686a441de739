"""`cuecast cuts`: boundaries of a synthetic clip, JSON and text, forecasts, and one-line errors."""

import json

import pytest

from cuecast.engine.cli import main
from cuecast.testmedia.cuts import Shot, render, write_video


@pytest.fixture(autouse=True)
def restore_threads():
    import torch

    n = torch.get_num_threads()  # the command runs torch on one thread; give the others theirs back
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    imgs, times, truth = render([Shot(1.2, seed=1), Shot(1.0, seed=2), Shot(1.4, seed=3)], size=(192, 108))
    path = tmp_path_factory.mktemp("cuts") / "clip.mp4"
    write_video(path, imgs)
    return path, truth


def test_json_boundaries_and_forecasts(clip, capsys):
    path, truth = clip
    assert main(["cuts", str(path), "--json", "--predict"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [round(b["t"], 3) for b in out["boundaries"]] == [round(t, 3) for t in truth["hard"]]
    for b in out["boundaries"]:
        assert b["kind"] == "hard" and b["decided_frame"] == round(b["t"] * 25) + 1
    assert len(out["forecasts"]) >= 30 and len(out["forecasts"][0]["hazard"]) == 40
    assert out["frames"] == 90


def test_text_output(clip, capsys):
    path, truth = clip
    assert main(["cuts", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 boundaries" in lines[0] and len(lines) == 3
    assert lines[1].split()[:2] == [f"{truth['hard'][0]:.3f}", "hard"]


@pytest.mark.parametrize("name,content", [("missing.mp4", None), ("notes.txt", b"not a video")])
def test_bad_input_is_one_line(tmp_path, capsys, name, content):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    assert main(["cuts", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cuecast: error:")


def test_missing_forecast_weights_is_one_line(clip, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[cuts]\nforecast_weights = "{tmp_path / "nope.pt"}"\n')
    assert main(["cuts", str(clip[0]), "--predict", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make_edits" in err[0]
