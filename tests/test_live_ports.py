"""`cuecast ports` lists the JACK MIDI ports and audio devices of a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from control_rig import clock_master
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


def test_virtual_port_appears_and_plays(jack):  # noqa: F811
    import time

    from cuecast.engine.scheduler import RealtimeScheduler
    from cuecast.types import Note

    t0 = [0.0]
    s = RealtimeScheduler(["virtual:cc-virt"], lambda t: t0[0] + t, {"chords": (1, 0)}, clock_out=False)
    try:
        port = next((p for p in jack.ports() if p.endswith(":cc-virt")), None)
        assert port is not None, jack.ports()
        rx = JackReceiver(client="virt-rx")
        try:
            subprocess.run(["jack_connect", port, rx.full_name], check=True, env=dict(os.environ))
            t0[0] = time.monotonic() + 0.1
            s.notes([Note(0.0, 0.1, 60, 90, "chords")])
            time.sleep(0.4)
            s.close()
            time.sleep(0.05)
            rx.drain()
            assert rx.note_ons() == 1 and rx.unmatched(strict=True) == set()
        finally:
            rx.close()
    finally:
        s.close()


def test_follows_an_external_midi_clock(jack):  # noqa: F811
    """Our own scheduler plays the master clock at 132 bpm; MidiClockIn on its JACK port reads the tempo."""
    import time

    from cuecast.engine.scheduler import RealtimeScheduler
    from cuecast.streams.midi_clock_in import MidiClockIn

    t0 = [0.0]
    master = RealtimeScheduler(["virtual:master-clock"], lambda t: t0[0] + t, {"chords": (1, 0)})
    try:
        port = next(p for p in jack.ports() if p.endswith(":master-clock"))
        follower = MidiClockIn(f"jack:{port}")
        try:
            assert follower.bpm is None
            t0[0] = time.monotonic() + 0.05
            master.tempo(0.0, 132.0, 0.0)
            time.sleep(1.6)
            assert follower.running and follower.bpm is not None
            assert abs(follower.bpm - 132.0) < 0.5
            master.tempo(1.6, 96.0, 1.6 * 132 / 60)
            time.sleep(1.6)
            assert abs(follower.bpm - 96.0) < 0.5
            master.close()
            time.sleep(0.7)
            assert not follower.running and follower.bpm is None
        finally:
            follower.close()
    finally:
        master.close()


def test_closing_the_clock_input_while_a_clock_plays_is_safe_and_leaves_no_port(jack):  # noqa: F811
    """rtmidi's JACK input frees its port under JACK's process thread when closed; in-process that crashed the
    whole process about once in 600 closes while ticks arrived (measured: a segfault in jackProcessIn). The port
    lives in a child process now: open and close it many times under a fast clock, then no port is left."""
    import threading
    import time

    import rtmidi

    from cuecast.streams.midi_clock_in import MidiClockIn

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "fast-master")
    out.open_virtual_port("clock")
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            out.send_message([0xF8])
            time.sleep(0.001)

    sender = threading.Thread(target=tick, daemon=True)
    sender.start()
    try:
        for _ in range(40):
            follower = MidiClockIn("jack:fast-master:clock")
            time.sleep(0.05)
            follower.close()
        assert follower.bpm is not None or follower.running  # ticks did arrive before the last close
    finally:
        stop.set()
        sender.join()
        out.close_port()
        del out
    deadline = time.monotonic() + 3
    while any("cuecast-clock" in p for p in jack.ports()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any("cuecast-clock" in p for p in jack.ports())


def test_the_clock_input_comes_back_on_the_masters_grid_when_its_port_process_dies(jack):  # noqa: F811
    """A crash in the MIDI backend ends only the port's process: the follower opens the port again and its song
    position goes on from where the master is, not from zero."""
    import signal
    import time

    from cuecast.streams.midi_clock_in import MidiClockIn

    period = 60.0 / (24 * 120.0)
    master = clock_master("steady-master")
    try:
        follower = MidiClockIn("jack:steady-master:clock")
        try:
            master.stdin.write(json.dumps({"bpm": 120.0, "steps": [["start", None], ["ticks", None]]}) + "\n")
            master.stdin.flush()
            time.sleep(2.0)
            assert follower.bpm is not None and abs(follower.bpm - 120.0) < 1.0
            os.kill(follower._proc.pid, signal.SIGKILL)  # as a segfault in the backend would end it
            time.sleep(0.7)
            assert follower.bpm is None  # no ticks while the port is gone (the tempo is forgotten after 0.5 s)
            time.sleep(2.6)
            assert follower.bpm is not None and abs(follower.bpm - 120.0) < 1.0
            bpm, at, beat = follower.grid_at(time.monotonic())
        finally:
            follower.close()
    finally:
        master.stdin.close()
        log = master.stdout.read()
        master.wait(5)
    t0 = next(t for t, kind, _ in json.loads(log) if kind == "tick")  # tick k is song position k
    # the master's beat `beat`, counted from its Start, is its tick 24 * beat (ticks go out on a fixed schedule)
    # to 10 ms plus one JACK cycle (a tick's receive time is only known to the cycle it arrived in)
    assert abs(at - (t0 + 24 * beat * period)) < 0.01 + jack.period / jack.rate, (at - t0) / period / 24 - beat
