"""`--audio-out jack:NAME`: the synth as a named JACK client whose out_L/out_R ports others (OBS) capture.

The synth runs in a child interpreter (as in the sender process); the test reads its ports with its own
JACK client, connected the way OBS's JACK input would be, and measures the signal on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from jack_server import jack  # noqa: F401 - `jack` is a fixture

from cuecast.streams.midi_ports import PortError
from cuecast.streams.synth_live import parse_audio_out

jack_client = pytest.importorskip("jack", reason="JACK-Client (the live extra) is not installed")

SYNTH = r"""
import json, sys, time
from cuecast.streams.midi_outputs import PortError, open_output
try:
    out = open_output("synth", audio_out=sys.argv[1])
except PortError as e:
    print(json.dumps({"error": str(e)}), flush=True); sys.exit(0)
print(json.dumps({"ready": out.label, "rate": out.sample_rate}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "on":
        for p in (60, 64, 67):
            out.send(bytes([0x90, p, 110]))
    elif cmd[0] == "panic":
        for cc in (123, 120, 64):
            out.send(bytes([0xB0, cc, 0]))
    elif cmd[0] == "quit":
        break
    print("ok", flush=True)
out.close()
"""


class Listener:
    """A JACK client with two inputs, keeping the peak level of every period."""

    def __init__(self, name: str = "listener"):
        self.client = jack_client.Client(name, no_start_server=True)
        self.ports = [self.client.inports.register(p) for p in ("in_L", "in_R")]
        self.peaks: list[tuple[float, float, float]] = []  # (time, left peak, right peak)
        self._lock = threading.Lock()

        def process(frames):
            left, right = (float(np.abs(p.get_array()).max()) for p in self.ports)
            with self._lock:
                self.peaks.append((time.monotonic(), left, right))

        self.client.set_process_callback(process)
        self.client.activate()

    def peak_since(self, t: float) -> tuple[float, float]:
        with self._lock:
            rows = [(l, r) for w, l, r in self.peaks if w >= t]
        return (max(l for l, _ in rows), max(r for _, r in rows)) if rows else (0.0, 0.0)

    def close(self):
        self.client.deactivate()
        self.client.close()


class SynthProcess:
    def __init__(self, spec: str):
        self.proc = subprocess.Popen([sys.executable, "-c", SYNTH, spec], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        self.hello = json.loads(self.proc.stdout.readline())

    def ask(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(10)


def test_named_client_ports_carry_the_synth(jack):  # noqa: F811
    synth = SynthProcess("jack:showtime")
    if "error" in synth.hello and "soundfont" in synth.hello["error"]:
        pytest.skip(f"no synth here: {synth.hello['error']}")
    try:
        assert synth.hello.get("ready") == "synth -> JACK showtime:out_L/out_R", synth.hello
        assert synth.hello["rate"] == jack.rate  # the synth renders at JACK's rate
        ports = jack.ports()
        assert "showtime:out_L" in ports and "showtime:out_R" in ports
        assert not any(p.startswith("showtime:") and p not in ("showtime:out_L", "showtime:out_R") for p in ports)
        listener = Listener()
        try:
            for src, dst in zip(("showtime:out_L", "showtime:out_R"), ("listener:in_L", "listener:in_R")):
                listener.client.connect(src, dst)
            time.sleep(0.3)
            silent = listener.peak_since(time.monotonic() - 0.2)
            synth.ask("on")
            t_on = time.monotonic()
            time.sleep(0.4)
            sounding = listener.peak_since(t_on)
            synth.ask("panic")
            time.sleep(0.6)  # the reverb tail fades
            after = listener.peak_since(time.monotonic() - 0.2)
        finally:
            listener.close()
    finally:
        synth.close()
    assert max(silent) < 1e-4
    assert min(sounding) > 0.02  # both channels carry the chord
    assert max(after) < 0.05 * min(sounding)


def test_connects_to_given_ports_and_refuses_a_taken_name(jack):  # noqa: F811
    listener = Listener("obs")
    try:
        synth = SynthProcess("jack:music?connect=obs")
        try:
            if "error" in synth.hello and "soundfont" in synth.hello["error"]:
                pytest.skip(f"no synth here: {synth.hello['error']}")
            conns = {p.name for p in listener.client.get_all_connections("obs:in_L")}
            assert conns == {"music:out_L"}
            assert {p.name for p in listener.client.get_all_connections("obs:in_R")} == {"music:out_R"}
            taken = SynthProcess("jack:music")
            taken.close()
            assert "exists already" in taken.hello.get("error", ""), taken.hello
        finally:
            synth.close()
        missing = SynthProcess("jack:other?connect=nobody:in_1,nobody:in_2")
        missing.close()
        assert "no JACK audio input port" in missing.hello.get("error", ""), missing.hello
    finally:
        listener.close()


def test_audio_out_specs():
    assert parse_audio_out("jack").client == "cuecast" and parse_audio_out("jack").jack
    t = parse_audio_out("jack:obs-music?connect=system:playback_1,system:playback_2")
    assert (t.client, t.exact_name, t.connect) == ("obs-music", True, ("system:playback_1", "system:playback_2"))
    assert parse_audio_out("3").device == 3 and parse_audio_out("USB Audio").device == "USB Audio"
    for bad in ("jack:a?port=x", "jack:a?connect=p,q,r"):
        with pytest.raises(PortError):
            parse_audio_out(bad)


def test_missing_package_is_named():
    """Without the live extra the error names the package to install (not PortAudio, not a traceback)."""
    script = ("import sys; sys.modules['sounddevice'] = None; sys.modules['jack'] = None\n"
              "from cuecast.streams.midi_outputs import PortError, open_output\n"
              "for where in (None, 'jack'):\n"
              "    try:\n        open_output('synth', audio_out=where)\n"
              "    except PortError as e:\n        print(e)\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2, p.stderr[-500:]
    assert "sounddevice package" in lines[0] and "cuecast[live]" in lines[0] and "PortAudio" not in lines[0]
    assert "JACK-Client package" in lines[1] and "cuecast[live]" in lines[1]


def test_live_command_plays_the_soundtrack_to_the_named_client(jack, tmp_path):  # noqa: F811
    """`cuecast live --audio-out jack:NAME` (no --midi-out): the ports appear under NAME and carry the music."""
    from cuecast.testmedia.video import make_test_video

    clip = tmp_path / "clip.mp4"
    make_test_video(clip, [(2.0, (200, 60, 60)), (2.0, (60, 200, 60)), (2.0, (60, 60, 200))], fps=25, size=(160, 90))
    proc = subprocess.Popen([sys.executable, "-m", "cuecast.engine.cli", "live", "--source", f"file:{clip}",
                             "--audio-out", "jack:cuecast-obs", "--generator", "arranger", "--lookahead", "0.5",
                             "--duration", "8", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listener = Listener("capture")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "cuecast-obs:out_R" not in jack.ports():
            assert proc.poll() is None, proc.stderr.read()[-800:]
            time.sleep(0.1)
        ports = [p for p in jack.ports() if p.startswith("cuecast-obs:")]
        assert ports == ["cuecast-obs:out_L", "cuecast-obs:out_R"]
        for src, dst in zip(ports, ("capture:in_L", "capture:in_R")):
            listener.client.connect(src, dst)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=90)
        heard = listener.peak_since(t0)
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-800:]
    assert min(heard) > 0.02  # the music, on both sides
    with listener._lock:
        loud = [w for w, l, r in listener.peaks if max(l, r) > 0.01]
    assert loud and loud[-1] - loud[0] > 3.0  # it played for seconds, not a click
