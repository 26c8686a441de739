"""report.png: a valid PNG of sensible size for a full timeline and for an empty one; file modes; atomicity."""

from __future__ import annotations

import os
import random
import struct

import numpy as np
import pytest

from cuecast.engine.errors import UserError
from cuecast.engine.report import build_figure, write_report
from cuecast.streams.midi_file import write_midi
from cuecast.types import EKMAN6, Boundary, EmotionWindow, Forecast, Note, TempoPoint, Timeline


def timeline_and_notes(seconds: float = 30.0) -> tuple[Timeline, list[Note]]:
    rng = np.random.default_rng(0)
    windows = []
    for k in range(int((seconds - 2) / 0.5) + 1):
        p = rng.dirichlet(np.ones(6))
        windows.append(EmotionWindow(0.5 * k, 0.5 * k + 2, tuple(p), float(np.sin(k / 8)), float(np.cos(k / 11)),
                                     ("picture",)))
    boundaries = [Boundary(4.0), Boundary(9.5, "fade", 9.5, 10.5), Boundary(15.2, "dissolve", 15.2, 16.0),
                  Boundary(21.0, "hint", source="mqtt"), Boundary(26.3)]
    forecasts = [Forecast(t, 0.25, np.full(16, 0.02 + 0.01 * (t % 5))) for t in np.arange(0, seconds, 0.5)]
    tempo = [TempoPoint(0.0, 92.0), TempoPoint(4.0, 96.5), TempoPoint(15.2, 120.0), TempoPoint(26.3, 84.0)]
    r = random.Random(1)
    notes, chords = [], []
    t = 0.0
    while t < seconds:
        notes.append(Note(t, t + 0.1, r.choice([36, 38, 42]), 100, "drums"))
        notes.append(Note(t, t + 0.45, r.randint(33, 45), 90, "bass"))
        notes.append(Note(t, t + 0.3, r.randint(67, 84), r.randint(50, 120), "melody"))
        t += 0.5
    for c in [0.0, 4.0, 8.0, 9.5, 12.0, 15.2, 19.0, 21.0, 24.0, 26.3]:
        chords.append(c)
        notes += [Note(c, c + 1.8, p, 80, "chords") for p in (60, 64, 67)]
        notes.append(Note(c, c + 1.9, 52, 60, "pad"))
    notes.append(Note(3.0, 5.0, 70, 70, "strings"))  # an instrument outside the standard five
    tl = Timeline(duration=seconds, boundaries=boundaries, emotion=windows, tempo=tempo, chords=chords,
                  forecasts=forecasts, meta={"input": "/some/dir/holiday.mp4", "generator": "arranger", "seed": 7})
    return tl, notes


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_full_report_is_a_readable_png(tmp_path):
    tl, notes = timeline_and_notes()
    path = tmp_path / "report.png"
    write_report(path, tl, notes)
    w, h = png_size(path)
    assert 1000 <= w <= 3000 and 700 <= h <= 2000
    assert 30_000 < path.stat().st_size < 3_000_000
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temp file left


def test_panels_share_time_and_show_what_happened():
    tl, notes = timeline_and_notes()
    fig = build_figure(tl, notes)
    main = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert len(main) == 3
    assert all(ax.get_xlim() == (0.0, 30.0) for ax in main)
    assert "holiday.mp4" in fig.get_suptitle()
    legends = [t.get_text() for ax in main if ax.get_legend() for t in ax.get_legend().get_texts()]
    for label in list(EKMAN6) + ["valence", "arousal", "hard (2)", "fade (1)", "dissolve (1)", "hint (1)",
                                 "tempo (bpm)", "chord onset (10)", "strings (1)", "drums (60)"]:
        assert label in legends


def test_empty_timeline_still_draws(tmp_path):
    path = tmp_path / "empty.png"
    write_report(path, Timeline(duration=3.0), [])
    assert png_size(path)[0] > 500


def test_unwritable_report_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write"):
        write_report(tmp_path / "missing" / "r.png", Timeline(duration=1.0), [])


def test_output_files_follow_the_umask(tmp_path):
    write_midi(tmp_path / "a.mid", [], [], {"bass": (2, 33)}, 1.0)
    assert (tmp_path / "a.mid").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m
