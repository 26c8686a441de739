"""The typed config: presets load, every bad value is refused by name."""

import pytest

from cuecast.engine.config import PRESETS, ConfigError, load_config


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.conductor.lookahead_s >= 0


def test_vj_preset_has_no_lookahead():
    assert load_config("vj").conductor.lookahead_s == 0.0
    assert load_config("default").conductor.lookahead_s == 3.0


@pytest.mark.parametrize("overrides, words", [
    ({"conductor.lookahead_s": -1}, "conductor.lookahead_s"),
    ({"conductor.lookahead_s": "soon"}, "must be a number"),
    ({"emotion.hop_s": 5.0}, "emotion.hop_s"),
    ({"generator.backend": "orchestra"}, "generator.backend"),
    ({"generator.top_p": 0}, "generator.top_p"),
    ({"instruments.bass.channel": 17}, "instruments.bass.channel"),
    ({"instruments.kazoo.channel": 3}, "unknown instruments entry 'kazoo'"),
    ({"conductor.tempo_min": 200}, "tempo_min"),
    ({"conductor.nonsense": 1}, "unknown key conductor.nonsense"),
    ({"source.analysis_width": True}, "must be an integer"),
])
def test_bad_values_are_named(overrides, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_partial_instrument_table_keeps_other_fields(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[instruments.bass]\nprogram = 38\n")
    cfg = load_config(f)
    assert cfg.instruments["bass"].program == 38
    assert cfg.instruments["bass"].channel == 2
    assert cfg.instruments["drums"].channel == 10


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such preset or file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[conductor\nlookahead_s = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
