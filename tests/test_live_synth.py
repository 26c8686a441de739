"""The `synth` output: FluidSynth rendering live to a sound device (JACK's, from the test server).

Each check runs in its own interpreter: PortAudio keeps its JACK client until the process ends, and its
exit handler aborts if the test's JACK server has gone first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from jack_server import jack  # noqa: F401 - `jack` is a fixture

from cuecast.streams.midi_outputs import PortError, parse_output_spec

SCRIPT = r"""
import json, sys, time
from cuecast.streams.midi_outputs import PortError, open_output
try:
    out = open_output(sys.argv[1])
except PortError as e:
    print(json.dumps({"error": str(e)})); sys.exit(0)
r = {}
time.sleep(0.2)
r["frames"], r["silent"] = out.frames, out.peak
out.send(bytes([0x92, 60, 110])); out.send(bytes([0x92, 64, 110]))
time.sleep(0.4)
r["sounding"] = out.peak
for cc in (123, 120, 64):  # what the sender's panic sends
    out.send(bytes([0xB2, cc, 0]))
time.sleep(0.5)  # the reverb tail fades
out.peak = 0.0
time.sleep(0.3)
r["after_panic"] = out.peak
out.close()
print(json.dumps(r))
"""


def synth(spec: str) -> dict:
    p = subprocess.run([sys.executable, "-c", SCRIPT, spec], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-600:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_synth_sounds_and_panic_silences(jack):  # noqa: F811
    r = synth("synth")
    if "error" in r:
        pytest.skip(f"no synth here: {r['error']}")
    assert r["frames"] > 0  # the device is pulling audio
    assert r["silent"] < 0.01  # silence before any note
    assert r["sounding"] > 0.02
    assert r["after_panic"] < 0.05 * r["sounding"]


def test_bad_soundfont_is_a_port_error(jack, tmp_path):  # noqa: F811
    bogus = tmp_path / "x.sf2"
    bogus.write_bytes(b"not a soundfont")
    r = synth(f"synth:{bogus}")
    assert "error" in r and "soundfont" in r["error"]
    assert parse_output_spec(f"synth:{bogus}").name == str(bogus)
    with pytest.raises(PortError):
        parse_output_spec("synthesizer")
