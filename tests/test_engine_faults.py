"""Faults inside the engine are never silent: a dead hint source is a warning (the music and the other hints
go on), a dead planner stops the run with its error, the output watch turns losses into lines and an exit
status, and the sender's lateness records stay the same size however long the run."""

from __future__ import annotations

import asyncio

import pytest

from cuecast.engine.clock import FastClock
from cuecast.engine.config import load_config
from cuecast.engine.faults import OutputWatch
from cuecast.engine.pipeline import Engine
from cuecast.engine.sender import LATE_KEEP, LateRing
from cuecast.engine.sender_messages import SendReport
from cuecast.engine.stages import build_stages
from cuecast.streams.midi_file import MidiFileSink
from cuecast.streams.sources import open_source
from cuecast.testmedia.video import make_test_video
from cuecast.types import Boundary


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine_faults") / "clip.mp4"
    make_test_video(path, [(2.0, (200, 180, 120)), (2.0, (40, 60, 90))], fps=25, size=(96, 64))
    return path


def _engine(clip, hints=()):
    cfg = load_config(None, {"generator.backend": "arranger", "conductor.lookahead_s": 1.0})
    source = open_source(f"file:{clip}", cfg.source, realtime=False)
    return Engine(cfg, source, MidiFileSink(), FastClock(cfg.conductor.lookahead_s), build_stages(cfg), hints=hints)


async def _broken_hints():
    yield Boundary(t=1.0, kind="hint", source="osc")
    raise TypeError("unsupported operand type(s) for -: 'str' and 'float'")  # a payload nobody checked


async def _good_hints():
    await asyncio.sleep(0)
    yield Boundary(t=3.0, kind="hint", source="mqtt")


def test_a_dead_hint_source_is_a_warning_and_the_rest_goes_on(clip, capsys):
    engine = _engine(clip, hints=[_broken_hints(), _good_hints()])
    timeline = asyncio.run(engine.run())
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("cuecast: warning:")]
    assert len(lines) == 1 and "hint source 1 stopped (TypeError" in lines[0] and "goes on" in lines[0]
    hinted = sorted(b.t for b in timeline.boundaries if b.kind == "hint")
    assert hinted == pytest.approx([1.0, 3.0])  # the one before the failure, and the other source's
    assert timeline.duration == pytest.approx(4.0, abs=0.1)


def test_a_dead_planner_stops_the_run_with_its_error(clip):
    engine = _engine(clip)

    async def broken(*_args):
        raise RuntimeError("the planner broke")

    engine.clock.keep_time = broken  # the background task that keeps the music ahead of the playhead
    with pytest.raises(RuntimeError, match="planner broke"):
        asyncio.run(engine.run())


class Status:
    """What RealtimeScheduler.status() would say, step by step."""

    def __init__(self):
        self.outputs = [("jack:synth", True, ""), ("rtmidi:Mini", True, "")]
        self.losses = 0
        self.alive = True

    def __call__(self):
        return {"outputs": list(self.outputs), "losses": self.losses, "alive": self.alive}


def test_output_watch_reports_losses_returns_and_a_dead_server():
    st, said, stopped = Status(), [], []
    watch = OutputWatch(st, lambda: 12.5, lambda: stopped.append(True), warn=said.append)
    watch.check()
    assert watch.exit_line() is None and not said
    st.outputs[1], st.losses = ("rtmidi:Mini", False, "port gone"), 1
    watch.check()
    watch.check()  # still lost: said once
    assert len(said) == 1 and "rtmidi:Mini lost at 12.5 s: port gone" in said[0]
    st.outputs[1] = ("rtmidi:Mini", True, "")
    watch.check()
    assert "back" in said[-1] and "programs and volumes" in said[-1]
    assert "1 output fault" in watch.exit_line() and "all came back" in watch.exit_line()
    st.losses = 2  # lost and back between two looks
    watch.check()
    assert "lost and came back" in said[-1]
    st.outputs[0] = ("jack:synth", False, "JACK server gone")
    st.losses = 3
    watch.check()
    assert stopped == [True] and "JACK server went away at 12.5 s" in watch.exit_line()


def test_output_watch_sees_the_sender_die_but_not_a_planned_end():
    st, stopped = Status(), []
    closed = [False]
    watch = OutputWatch(st, lambda: 3.0, lambda: stopped.append(True), closed=lambda: closed[0], warn=lambda m: None)
    closed[0] = True
    st.alive = False
    watch.check()
    assert watch.exit_line() is None and not stopped
    closed[0] = False
    watch.check()
    assert stopped and "sender process ended unexpectedly" in watch.exit_line()


def test_lateness_stays_the_same_size_however_long():
    ring = LateRing()
    size = len(ring.buf)
    for i in range(3 * LATE_KEEP + 5):
        ring.append((i % 1000) / 1e6)
    ring.append(0.5)
    assert len(ring.buf) == size and ring.n == 3 * LATE_KEEP + 6 and ring.max == 0.5
    kept = ring.values()
    assert len(kept) == LATE_KEEP and kept[-1] == 0.5 and kept[-2] == ((3 * LATE_KEEP + 4) % 1000) / 1e6
    rep = SendReport(lateness=kept, lateness_count=ring.n, lateness_max=ring.max)
    pct = rep.percentiles_ms()
    assert pct["n"] == ring.n and pct["max"] == 500.0
