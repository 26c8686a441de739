"""Ableton Link (the `link` extra): a second Link app follows the sender's tempo and beat, and sees it leave.

Both Link peers run in one helper process (our sender is its child) inside a network namespace with only
the loopback interface up, so Link's multicast stays on this machine; without root, in the default one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from cuecast.testmedia.video import make_test_video

SCENARIO = r"""
import asyncio, json, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from aalink import Link
from cuecast.engine.scheduler import RealtimeScheduler

sched = RealtimeScheduler(["none"], lambda t: t0 + t, {"chords": (1, 0)}, link=True, realtime_priority=False)
loop = asyncio.new_event_loop()
peer = Link(90.0, loop)  # another Link app, at another tempo
peer.enabled = True
end = time.monotonic() + 15
while peer.num_peers < 1 and time.monotonic() < end:
    time.sleep(0.05)
out = {"peers": peer.num_peers}
t0 = time.monotonic() + 0.3
sched.tempo(0.0, 100.0, 0.0)
sched.tempo(2.0, 130.0, 2.0 * 100 / 60)  # a tempo move at media 2 s, as the conductor makes to land a cut

def sample(at):
    while time.monotonic() < t0 + at:
        time.sleep(0.001)
    return {"tempo": peer.tempo, "beat": peer.beat, "at": time.monotonic() - t0}

out["before"] = sample(1.0)
out["after"] = sample(3.0)
sched.close()
end = time.monotonic() + 10
while peer.num_peers > 0 and time.monotonic() < end:
    time.sleep(0.05)
out["peers_after_close"] = peer.num_peers
print(json.dumps(out))
"""


def run_on_loopback(code: str) -> dict:
    cmd = [sys.executable, "-c", code]
    ns = f"cuecast-link-{uuid.uuid4().hex[:8]}"
    use_ns = os.geteuid() == 0 and shutil.which("ip") is not None
    if use_ns:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        cmd = ["ip", "netns", "exec", ns, *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd="/")
    finally:
        if use_ns:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    assert p.returncode == 0, p.stderr[-1500:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def phase_gap(a: float, b: float) -> float:
    """Distance between two beat positions within one beat (0..0.5)."""
    d = (a - b) % 1.0
    return min(d, 1.0 - d)


def test_a_link_peer_follows_the_tempo_and_beat_and_sees_the_sender_leave():
    pytest.importorskip("aalink")
    out = run_on_loopback(SCENARIO)
    assert out["peers"] == 1
    before, after = out["before"], out["after"]
    assert before["tempo"] == pytest.approx(100.0, rel=1e-3)
    assert after["tempo"] == pytest.approx(130.0, rel=1e-3)
    # in phase with the beat of our MIDI clock: 100 bpm for 2 s, then 130 bpm (Link aligns the phase within
    # the quantum, one beat here; peers' beat counts may differ by whole quanta)
    assert phase_gap(before["beat"], before["at"] * 100 / 60) < 0.03
    assert phase_gap(after["beat"], 2.0 * 100 / 60 + (after["at"] - 2.0) * 130 / 60) < 0.03
    assert out["peers_after_close"] == 0


def test_link_without_aalink_is_one_line_and_exit_2(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_test_video(clip, [(1.0, (200, 60, 60))], fps=25, size=(160, 90))
    # this Python cannot find aalink: `cuecast live --link` says how to get it, starts nothing
    code = ("import importlib.util, sys\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'aalink' else real(name, *a)\n"
            "from cuecast.engine.cli import main\n"
            f"sys.exit(main(['live', '--source', 'file:{clip}', '--midi-out', 'none', '--link', '-q']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 2, p.stderr[-800:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cuecast: error:") and "cuecast[link]" in lines[0]
