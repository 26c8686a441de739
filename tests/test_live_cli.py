"""`cuecast live` end to end against a real JACK server: every way out leaves no note sounding."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import mido
import pytest
from jack_server import JackReceiver, die_with_parent, jack  # noqa: F401 - `jack` is a fixture

from cuecast.engine.clock import RealtimeClock
from cuecast.engine.config import load_config
from cuecast.engine.pipeline import Engine
from cuecast.engine.scheduler import RealtimeScheduler
from cuecast.engine.stages import build_stages
from cuecast.streams.video import FileSource
from cuecast.testmedia.video import make_test_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "clip.mp4"
    make_test_video(path, [(1.2, (230, 190, 120)), (1.2, (40, 50, 90)), (1.2, (220, 40, 40))], fps=25, size=(160, 90))
    return path


@pytest.fixture
def rx(jack):  # noqa: F811
    r = JackReceiver(client=f"live{time.monotonic_ns() % 10**9}")
    yield r
    r.close()


def live(clip, rx, *extra, generator: str | None = "arranger") -> subprocess.Popen:
    """`cuecast live` on the clip; generator None is the default one (the transformer). The tests about the ways
    out use the arranger: they need notes sounding soon after the start, whatever the machine's load."""
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", f"file:{clip}",
           "--midi-out", f"jack:{rx.full_name}", "--lookahead", "1", *extra]
    if generator is not None:
        cmd += ["--generator", generator]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=die_with_parent)


def wait_for_notes(rx, proc, timeout=40.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and rx.note_ons() < 3:
        if proc.poll() is not None:
            pytest.fail(f"cuecast live ended early: {proc.stderr.read()[-800:]}")
        time.sleep(0.05)
    assert rx.note_ons() >= 3, "no notes arrived"


def test_normal_end_plays_everything_and_records(clip, rx, tmp_path):
    """With the default generator (the transformer): on a loaded machine it may fall behind real time, and then
    the music skips ahead (a warning says so) instead of playing for the past: the run still ends with the clip."""
    proc = live(clip, rx, "--record", str(tmp_path), "--seed", "3", generator=None)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-800:]
    time.sleep(0.05)
    rx.drain()
    assert rx.note_ons() > 10
    assert rx.unmatched() == set()
    assert rx.has(0xFA) and rx.has(0xFC)
    sent = mido.MidiFile(tmp_path / "sent.mid")
    ons = sum(1 for m in sent.tracks[0] if m.type == "note_on" and m.velocity > 0)
    assert ons == rx.note_ons()  # the record is what the port got
    tl = json.loads((tmp_path / "timeline.json").read_text())
    assert [c["t"] for c in tl["cuts"]] == pytest.approx([1.2, 2.4], abs=0.05)
    assert tl["live"] is True and "played" in err and tl["generator"] == "transformer"
    played = float(err.split("played ")[1].split(" s")[0])
    assert played < 3.6 + 1.0 + 6.0, err[-800:]  # the clip and the lookahead, plus a few slow steps at worst


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_with_no_stuck_note(clip, rx, sig):
    proc = live(clip, rx, "-q", "--loop")
    wait_for_notes(rx, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err[-800:]
    time.sleep(0.05)
    rx.drain()
    assert rx.unmatched() == set()
    assert rx.unmatched(strict=True) == set()  # explicit note-offs, not only all-notes-off
    assert rx.has(0xFC)
    assert "Traceback" not in err


def test_unknown_port_is_one_line(clip, jack):  # noqa: F811
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "live", f"file:{clip}",
                        "--midi-out", "jack:nothing-like-this"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.startswith("cuecast")]
    assert len(lines) == 1 and "nothing-like-this" in lines[0] and "available" in lines[0]


class Exploding(FileSource):
    """A source that fails mid-stream, as a camera that is pulled out would."""

    def __init__(self, *args, after: float, **kw):
        super().__init__(*args, **kw)
        self.after = after

    def _items(self):
        for item in super()._items():
            if getattr(item, "t", 0.0) > self.after:
                raise RuntimeError("the capture device went away")
            yield item


def test_error_inside_the_engine_leaves_nothing_sounding(clip, rx):
    cfg = load_config(None, {"conductor.lookahead_s": 1.0, "generator.backend": "arranger"})
    clock = RealtimeClock(cfg.conductor.lookahead_s)
    sched = RealtimeScheduler([f"jack:{rx.full_name}"], clock.wall_of, cfg.instrument_map())
    source = Exploding(clip, cfg.source.analysis_width, realtime=True, after=1.3)
    engine = Engine(cfg, source, sched, clock, build_stages(cfg))
    with pytest.raises(RuntimeError, match="went away"):
        asyncio.run(engine.run())
    assert sched.report is not None  # the engine closed it on the way out
    time.sleep(0.05)
    rx.drain()
    assert rx.note_ons() > 0
    assert rx.unmatched(strict=True) == set()


def test_lavfi_source_with_duration(rx):
    proc = subprocess.Popen([sys.executable, "-m", "cuecast.engine.cli", "live", "--source",
                             "lavfi:testsrc=size=320x180:rate=25", "--midi-out", f"jack:{rx.full_name}",
                             "--lookahead", "1", "--duration", "2.5", "-q", "--generator", "arranger"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-800:]
    time.sleep(0.05)
    rx.drain()
    assert rx.note_ons() > 0
    assert rx.unmatched(strict=True) == set()


def test_missing_device_is_one_line():
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "live", "device:/dev/no-such-video",
                        "--midi-out", "none"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no-such-video" in r.stderr.strip().splitlines()[-1]
