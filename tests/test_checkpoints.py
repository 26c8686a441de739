"""Checkpoints are data: a .pt named in a TOML config never runs code, and a wrong one is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from cuecast.engine.config import load_config
from cuecast.engine.errors import UserError
from cuecast.engine.stages import build_stages, make_generator
from cuecast.models.cuts.forecast import HazardNet

# every weights path a config file can name, and the preset that makes cuecast load it
WEIGHT_KEYS = [("generator", "weights", {"generator": {"backend": "transformer"}}),
               ("cuts", "forecast_weights", {"cuts": {"forecast": True}, "conductor": {"lookahead_s": 0.0}}),
               ("emotion", "fusion_weights", {}),
               ("emotion", "face_weights", {"emotion": {"faces": True}})]


class Payload:
    """Unpickling this calls os.system: what a crafted checkpoint does to a loader that trusts pickle."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def evil_checkpoint(path, marker) -> None:
    torch.save({"config": {}, "state": Payload(f"touch {marker}"), "model": Payload(f"touch {marker}")}, path)


def config_naming(tmp_path, section: str, key: str, tables: dict, weights) -> str:
    """A TOML config file with `tables` and [section] key = weights."""
    tables = {name: dict(kv) for name, kv in tables.items()}
    tables.setdefault(section, {})[key] = str(weights)
    toml = tmp_path / f"{section}-{key}.toml"
    toml.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in kv.items())
                            for name, kv in tables.items()))
    return str(toml)


def test_the_payload_is_live(tmp_path):
    """The test's own check: loading the file the unsafe way really would run the command."""
    marker, pt = tmp_path / "pwned", tmp_path / "evil.pt"
    evil_checkpoint(pt, marker)
    torch.load(pt, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("section,key,extra", WEIGHT_KEYS)
def test_malicious_checkpoint_in_config_runs_nothing(tmp_path, section, key, extra):
    marker, pt = tmp_path / "pwned", tmp_path / "evil.pt"
    evil_checkpoint(pt, marker)
    cfg = load_config(config_naming(tmp_path, section, key, extra, pt))
    with pytest.raises(UserError) as e:
        build_stages(cfg)
    assert not marker.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(pt) in msg and "cannot be read as weights" in msg


def test_malicious_checkpoint_from_the_command_line(tmp_path):
    marker, pt = tmp_path / "pwned", tmp_path / "evil.pt"
    evil_checkpoint(pt, marker)
    toml = config_naming(tmp_path, "generator", "weights", {}, pt)
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "compose", "--config", toml, "--generator",
                        "transformer", "--valence", "0", "--arousal", "0", "--seconds", "2", "-o",
                        str(tmp_path / "x.mid")], capture_output=True, text=True, timeout=120)
    assert not marker.exists()
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cuecast: error: music transformer weights at")
    assert not (tmp_path / "x.mid").exists()


def _generator_error(tmp_path, ck) -> str:
    pt = tmp_path / "w.pt"
    torch.save(ck, pt)
    cfg = load_config(None, {"generator.backend": "transformer", "generator.weights": str(pt)})
    with pytest.raises(UserError) as e:
        make_generator(cfg.generator)
    msg = str(e.value)
    assert "\n" not in msg and str(pt) in msg
    return msg


def test_music_weights_with_wrong_shapes_say_which(tmp_path):
    from cuecast.models.music import model as M
    from cuecast.models.music import tokens as T

    small = M.MusicTransformer(M.ModelConfig(n_layer=1, d_model=32, n_head=2, context=16))
    state = small.state_dict()
    name = next(iter(state))
    state[name] = torch.zeros(3, 3)
    del state[list(state)[-1]]
    msg = _generator_error(tmp_path, {"config": small.cfg.to_dict(), "state": state, "vocab_size": T.VOCAB_SIZE})
    assert f"{name} is (3, 3), expected" in msg and "missing" in msg


def test_music_weights_cannot_ask_for_a_giant_model(tmp_path):
    from cuecast.models.music import tokens as T

    msg = _generator_error(tmp_path, {"config": {"n_layer": 10_000, "d_model": 1 << 20}, "state": {},
                                      "vocab_size": T.VOCAB_SIZE})
    assert "n_layer = 10000 is outside" in msg


def test_music_weights_that_are_not_a_checkpoint(tmp_path):
    assert "not a checkpoint dict" in _generator_error(tmp_path, [1, 2, 3])
    assert "no 'state' entry" in _generator_error(tmp_path, {"config": {}})
    pt = tmp_path / "w.pt"
    msg = _generator_error(tmp_path, {"config": {}})  # writes w.pt; now truncate it
    pt.write_bytes(pt.read_bytes()[:40])
    cfg = load_config(None, {"generator.backend": "transformer", "generator.weights": str(pt)})
    with pytest.raises(UserError, match="cannot be read as weights"):
        make_generator(cfg.generator)
    assert msg


def test_forecast_weights_of_another_size(tmp_path):
    from cuecast.models.cuts.forecast import N_FEATURES

    pt = tmp_path / "f.pt"
    net = HazardNet(N_FEATURES, 8)
    state = net.state_dict()
    torch.save({"n_features": N_FEATURES, "hidden": 16, "model": state}, pt)  # says 16, holds 8
    cfg = load_config(None, {"cuts.forecast_weights": str(pt)})
    with pytest.raises(UserError) as e:
        build_stages(cfg, forecast=True)
    assert "\n" not in str(e.value) and "do not fit this model" in str(e.value)
