"""Bounds on the work an input can ask for: what kind of file it is, how long it runs, how far its clock jumps.

A tiny file can declare hours: a frame timestamp that jumps from 0.04 s to 600 s would otherwise be ten
minutes of music (and of WAV) from two frames. Media time here is the input's own presentation time with
every jump longer than `max_gap` closed up to one frame (a discontinuity, as a spliced or broken stream
has), and a pass stops at `max_duration`. Both say so once, in one line, through `warn`.
"""

from __future__ import annotations

import os
import stat
from typing import Callable

_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


class InputKindError(Exception):
    """The input path is not a regular file or a device (the engine reports it as a user error)."""


def check_input_file(path: str, stream_hint: str = "") -> None:
    """Refuse what would hang or mislead a file reader: a FIFO or socket waits forever for a writer, a
    folder is no video. Devices pass (a capture device, a disk). `stream_hint` tells the user how to ask
    for a stream instead, where the command has a way."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the opener words it
    for test, kind in _SPECIAL:
        if test(mode):
            how = f"; {stream_hint}" if stream_hint and not stat.S_ISDIR(mode) else ""
            raise InputKindError(f"{path} is {kind}, not a video file{how}")


def fmt_s(t: float) -> str:
    """Seconds for messages: 12.34 s, or 1 h 02 min 03 s when long."""
    if t < 600:
        return f"{t:.2f} s"
    h, rest = divmod(int(t), 3600)
    return f"{h} h {rest // 60:02d} min {rest % 60:02d} s" if h else f"{rest // 60} min {rest % 60:02d} s"


class MediaClock:
    """Presentation times -> media time of one pass over an input (see the module docstring).

    `t(pts)` gives the media time of a frame at presentation time `pts` (seconds, frames in presentation
    order), or None once the pass is past `max_duration`. `shift_at(pts)` gives what was taken out before
    `pts`, for writers that retime the picture the same way.
    """

    def __init__(self, max_gap: float, max_duration: float, frame_s: float, name: str = "the input",
                 warn: Callable[[str], None] | None = None):
        self.max_gap, self.max_duration = max_gap, max_duration
        self.frame_s = frame_s if frame_s > 0 else 1 / 25
        self.name, self.warn = name, warn
        self.t0: float | None = None
        self.last: float | None = None  # last presentation time seen
        self.shift = 0.0  # seconds taken out so far
        self.jumps: list[tuple[float, float]] = []  # (presentation time where it applies, total shift from there)
        self.stopped = False

    def t(self, pts: float) -> float | None:
        if self.stopped:
            return None
        if self.t0 is None:
            self.t0 = self.last = pts
        gap = pts - self.last
        if gap > self.max_gap:
            self.shift += gap - self.frame_s
            self.jumps.append((pts, self.shift))
            if self.warn is not None and len(self.jumps) == 1:
                self.warn(f"{self.name}: the frame times jump from {fmt_s(self.last - self.t0)} to "
                          f"{fmt_s(pts - self.t0)}; taken as a discontinuity, not {fmt_s(gap)} of music "
                          f"(source.max_gap_s = {self.max_gap:g})")
        self.last = max(self.last, pts)
        t = pts - self.t0 - self.shift
        if t > self.max_duration:
            self.stopped = True
            if self.warn is not None:
                self.warn(f"{self.name}: stopped at {fmt_s(self.max_duration)}, the longest input a run takes "
                          f"(source.max_duration_s)")
            return None
        return t

    def shift_at(self, pts: float) -> float:
        """Seconds taken out before presentation time pts (0 before the first jump)."""
        out = 0.0
        for at, total in self.jumps:
            if pts >= at:
                out = total
            else:
                break
        return out


def truncation_warning(name: str, read_s: float, declared_s: float) -> str | None:
    """A warning when the frames end well before the container said they would (a cut-off download)."""
    if declared_s <= 0 or read_s >= declared_s - max(1.0, 0.02 * declared_s):
        return None
    return (f"{name} ends at {fmt_s(read_s)} of the {fmt_s(declared_s)} its header declares "
            f"(truncated?); used what was there")
