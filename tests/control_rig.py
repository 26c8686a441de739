"""Test rig for the remote-control tests: a real mosquitto the test can kill and restart on the same loopback
port, and a live engine run in-process (real JACK MIDI out, the configured bridges) beside a test scenario.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cuecast.engine.config import load_config
from cuecast.engine.hints import Warnings
from cuecast.engine.live import LivePlayer
from cuecast.engine.pipeline import Engine
from cuecast.engine.remote import Remote
from cuecast.engine.scheduler import SendReport
from cuecast.testmedia.video import make_test_video


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_exe() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class Broker:
    """mosquitto on 127.0.0.1:port with its own config; stop() kills it (no goodbye to clients), start() again
    brings it back on the same port."""

    def __init__(self, tmp: Path, extra: str = ""):
        exe = mosquitto_exe()
        if exe is None:
            pytest.skip("mosquitto binary not installed (Debian package `mosquitto`)")
        self.exe = exe
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s with a cut every 1.5 s, colours that read as different moods."""
    path = tmp_path_factory.mktemp("control") / "clip.mp4"
    colours = [(230, 190, 120), (40, 50, 90), (220, 40, 40), (90, 160, 90)]
    make_test_video(path, [(1.5, colours[i % 4]) for i in range(8)], fps=25, size=(160, 90))
    return path


@dataclass
class Run:
    """What a rig run leaves for the checks."""

    engine: Engine
    remote: Remote
    clock: object
    report: SendReport
    result: object = None
    warnings: list[str] = field(default_factory=list)


class Recorder:
    """Warnings captured as lines (still one line each), for the checks."""

    def __init__(self):
        self.lines: list[str] = []

    def write(self, s: str) -> None:
        self.lines.extend(x for x in s.splitlines() if x)

    def flush(self) -> None:
        pass


def run_engine(clip, outputs: list[str], scenario, *, overrides: dict | None = None, lookahead: float = 1.0,
               generator: str = "arranger", loop: bool = True, max_s: float = 60.0) -> Run:
    """Play `clip` live to `outputs` (engine.live.LivePlayer, as `cuecast live` does) with the configured bridges;
    `scenario(engine, remote, clock)` runs beside it and the play stops when it returns."""
    cfg = load_config(None, {"conductor.lookahead_s": lookahead, "generator.backend": generator, **(overrides or {})})
    rec = Recorder()
    warn = Warnings(stream=rec)
    remote = Remote(cfg.control, warn)
    out: dict = {}
    record = Path(tempfile.mkdtemp(prefix="cuecast-rig-"))

    async def control(engine):
        engine.control.warnings = warn
        engine.control.gate.warn = warn
        async with remote.running(engine):
            try:
                out["result"] = await asyncio.wait_for(scenario(engine, remote, engine.clock), max_s)
            except BaseException as e:  # noqa: BLE001 - handed to the test below
                out["error"] = e
            finally:
                player.stop()
            await asyncio.Future()  # the bridges run until the engine has ended (LivePlayer cancels us then)

    player = LivePlayer(cfg, str(clip), outputs, loop=loop, record=record, control=control)
    try:
        result = asyncio.run(player.play())
    finally:
        shutil.rmtree(record, ignore_errors=True)
    if "error" in out:
        raise out["error"]
    return Run(player.engine, remote, player.engine.clock, result.report, out.get("result"), rec.lines)


async def wait_until(pred, timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return pred()


def note_ons(report: SendReport, start: float = float("-inf"), end: float = float("inf")) -> list[tuple[float, int, int, int]]:
    """(send time, channel, pitch, velocity) of the note-ons the sender put on output 0 in [start, end)."""
    return [(w, m[0] & 0x0F, m[1], m[2]) for w, m in report.log
            if m[0] & 0xF0 == 0x90 and m[2] > 0 and start <= w < end]


# A MIDI clock master on a real JACK port, in a process of its own and on a spinning schedule: a master thread in the
# test's process shares the interpreter with the follower's reader, and was late by whole ticks on a loaded machine.
# It reads one JSON plan from stdin, {"bpm": b, "steps": [[step, arg], ...]}, with steps "start", "ticks" (for arg
# seconds; null: until the test closes stdin), "stop", "sleep" (arg seconds) and "continue" (Song Position arg in
# sixteenths, then Continue); it prints a log of what it sent, [[monotonic time, kind, song position in ticks], ...].
CLOCK_MASTER = r"""
import json, select, sys, time
import rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, sys.argv[1])
out.open_virtual_port("clock")
print("ready", flush=True)
plan = json.loads(sys.stdin.readline())
period = 60.0 / (24 * plan["bpm"])
log = []
def send(msg, kind, pos=None):
    out.send_message(msg)
    log.append([time.monotonic(), kind, pos])
def ticks(seconds, pos):
    t = time.monotonic()
    end = t + seconds if seconds is not None else float("inf")
    while t < end and (seconds is not None or not select.select([sys.stdin], [], [], 0)[0]):
        while time.monotonic() < t:
            pass
        send([0xF8], "tick", pos)
        pos, t = pos + 1, t + period  # a fixed schedule from the first tick
    return pos
pos = 0
for step, arg in plan["steps"]:
    if step == "start":
        send([0xFA], "start")
        pos = 0
    elif step == "ticks":
        pos = ticks(arg, pos)
    elif step == "stop":
        send([0xFC], "stop")
    elif step == "sleep":
        time.sleep(arg)
    elif step == "continue":
        send([0xF2, arg & 0x7F, arg >> 7], "spp")
        send([0xFB], "continue")
        pos = arg * 6
print(json.dumps(log), flush=True)
"""


def clock_master(name: str) -> subprocess.Popen:
    """CLOCK_MASTER started as JACK client `name` (port `name:clock`), its port open; write the plan to its stdin."""
    master = subprocess.Popen([sys.executable, "-c", CLOCK_MASTER, name], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert master.stdout.readline().strip() == "ready"
    return master
