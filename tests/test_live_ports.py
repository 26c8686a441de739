"""`cuecast ports` lists the JACK MIDI ports and audio devices of a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture


def test_ports_lists_jack_midi_and_audio(jack):  # noqa: F811
    rx = JackReceiver(client="ports-probe")
    try:
        r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "ports", "--json"], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ))
    finally:
        rx.close()
    assert r.returncode == 0, r.stderr[-500:]
    data = json.loads(r.stdout)
    assert data["jack"] is True
    assert {"api": "Jack", "name": rx.full_name} in data["midi_outputs"]
    assert any("JACK" in d["hostapi"] for d in data["audio_outputs"]) or any("PortAudio" in n for n in data["notes"])
    plain = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "ports"], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ))
    assert plain.returncode == 0 and "MIDI outputs:" in plain.stdout and "Traceback" not in plain.stderr
