"""The conventions every command follows: --config/--set/-q everywhere, a positional input, TOML out of
`config` that loads back, `compose` writing what the file name asks for, one-line errors."""

from __future__ import annotations

import subprocess
import wave

import mido
import pytest

from cuecast.engine import cli
from cuecast.engine.config import PRESETS, load_config, to_toml

COMMANDS = cli.COMMANDS


@pytest.fixture
def run_cli(capsys):
    """cuecast in this process: (exit status, stdout, stderr)."""
    def run(*args: str) -> subprocess.CompletedProcess:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)
    return run


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_config_prints_toml_that_loads_back_to_the_same_config(preset, tmp_path, capsys):
    extra = ["--config", preset] if preset else []
    assert cli.main(["config", *extra, "--set", "conductor.lookahead_s=1.25",
                     "--set", 'live.latency_ms={"jack:synth" = 12.5}', "--set", "hints.osc=127.0.0.1:9000"]) == 0
    saved = tmp_path / "mine.toml"
    saved.write_text(capsys.readouterr().out)
    want = load_config(preset, {"conductor.lookahead_s": 1.25, "live.latency_ms": {"jack:synth": 12.5},
                                "hints.osc": "127.0.0.1:9000"})
    assert load_config(saved) == want
    assert to_toml(load_config(saved)) == saved.read_text()


def test_every_command_takes_config_set_and_quiet():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        options = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert {"--config", "--set", "-q", "--quiet"} <= options, name


def test_set_errors_are_one_line(run_cli):
    for bad, words in [("conductor", "SECTION.KEY=VALUE"), ("conductor.nope=1", "unknown key conductor.nope"),
                       ("conductor.lookahead_s=-3", "conductor.lookahead_s")]:
        r = run_cli("config", "--set", bad)
        assert r.returncode == 2 and r.stderr.startswith("cuecast: error:") and words in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_set_reaches_the_engine(run_cli, tmp_path):
    r = run_cli("compose", "--valence", "0", "--arousal", "0", "--seconds", "6", "--generator", "arranger",
                "--set", "conductor.tempo_min=150", "--set", "conductor.tempo_max=151", "-o", str(tmp_path / "x.mid"))
    assert r.returncode == 0, r.stderr
    tempos = [m.tempo for m in mido.MidiFile(tmp_path / "x.mid").tracks[0] if m.type == "set_tempo"]
    assert tempos and all(abs(mido.tempo2bpm(t) - 150.5) < 1.0 for t in tempos)


def test_compose_writes_audio_for_wav_and_midi_for_mid(run_cli, tmp_path):
    wav, mid = tmp_path / "calm.wav", tmp_path / "calm.mid"
    for out in (wav, mid):
        r = run_cli("compose", "--valence", "0.5", "--arousal", "-0.3", "--seconds", "3", "--generator", "arranger",
                    "-o", str(out))
        assert r.returncode == 0, r.stderr
    with wave.open(str(wav)) as w:
        assert w.getnchannels() == 2 and abs(w.getnframes() / w.getframerate() - 3.0) < 0.01
    assert mido.MidiFile(mid).length > 2.0
    r = run_cli("compose", "--valence", "0", "--arousal", "0", "--seconds", "3", "-o", str(tmp_path / "x.mp3"))
    assert r.returncode == 2 and ".mid" in r.stderr and ".wav" in r.stderr


def test_live_takes_its_source_as_a_positional_or_as_source(run_cli):
    for args in (["live", "lavfi:nonsense_graph"], ["live", "--source", "lavfi:nonsense_graph"]):
        r = run_cli(*args, "--midi-out", "none")
        assert r.returncode == 2 and "nonsense_graph" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("live", "--midi-out", "none")
    assert r.returncode == 2 and "SOURCE" in r.stderr


def test_a_command_that_cannot_import_says_so(monkeypatch, capsys):
    real = cli.importlib.import_module

    def broken(name, *a):
        if name.endswith(".emotion"):
            raise ImportError("No module named 'cv2'")
        return real(name, *a)

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    assert cli.main(["emotion", "x.mp4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cuecast: error: `cuecast emotion` cannot run") and "cv2" in err
    assert cli.main(["config", "-q"]) == 0  # the others still work
