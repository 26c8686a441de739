"""The live display: what it shows from the engine's state and the sender's status."""

from __future__ import annotations

import io

from cuecast.engine.display import LiveDisplay, status_lines
from cuecast.engine.pipeline import EngineState


def sender():
    return {"outputs": [("jack:synth", True), ("rtmidi:Mini", False)], "priority": "realtime (SCHED_FIFO)",
            "alive": True, "late_p99_ms": 0.12, "late_max_ms": 0.3}


def test_status_lines_show_what_matters():
    st = EngineState(t_in=12.0, t_play=9.0, frames=300, dropped=4, valence=0.4, arousal=-0.2,
                     probs=(0.05, 0.05, 0.1, 0.6, 0.1, 0.1), tempo=112.5, bar=7, beat_in_bar=2,
                     next_boundary=10.5, next_boundary_known=False, boundaries=3, replans=1, analysis_ms=21.0)
    text = "\n".join(status_lines(st, sender(), 3.0))
    for want in ("joy", "0.60", "+0.40", "-0.20", "in  1.5 s (forecast", "112.5 bpm", "bar 8.3", "jack:synth ok",
                 "rtmidi:Mini LOST", "dropped 4", "p99 0.12 ms", "lookahead 3 s"):
        assert want in text, want


def test_every_line_fits_an_80_column_terminal():
    st = EngineState(t_in=86399.96, t_play=86396.96, frames=2_159_999, dropped=123_456, valence=-1.0, arousal=1.0,
                     probs=(0.05, 0.6, 0.1, 0.05, 0.1, 0.1), tempo=160.0, bar=123_456, beat_in_bar=3,
                     next_boundary=86399.5, next_boundary_known=True, boundaries=45_678, replans=12_345,
                     analysis_ms=1234.5)
    busy = sender() | {"outputs": [(f"jack:a-long-client-name-{i}:in", i % 2 == 0) for i in range(4)],
                       "late_p99_ms": 1234.56, "late_max_ms": 98765.4, "alive": False}
    lines = status_lines(st, busy, 30.0)
    assert all(len(line) <= 80 for line in lines), [len(x) for x in lines]
    assert any(line.endswith("\u2026") for line in lines)  # what does not fit is cut, visibly
    assert "disgust" in "\n".join(lines) and "dropped 123456" in "\n".join(lines)


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    d = LiveDisplay(lambda: EngineState(), sender, 0.0, stream=out, interval=0.01).start()
    d.stop()
    lines = out.getvalue().splitlines()
    assert lines and all("\x1b" not in line for line in lines)
    assert "waiting for the first window" in lines[-1]
