"""The live terminal display: what the engine hears and plays, refreshed a few times a second on stderr.

On a terminal it redraws one block in place; into a pipe or a log file it writes a plain line a second.
It runs in its own thread and only reads (the engine's state and the sender's shared status).
"""

from __future__ import annotations

import shutil
import sys
import threading
from typing import Callable, TextIO

from cuecast.models.emotion.va import top_share


def _emotion(state) -> str:
    if not state.probs:
        return "emotion  (waiting for the first window)"
    name, share = top_share(state.probs, state.neutral)
    return f"emotion  {name:<8} {share:.2f}   valence {state.valence:+.2f}  arousal {state.arousal:+.2f}"


def _boundary(state) -> str:
    nb = state.next_boundary
    tally = f"{state.boundaries} so far, {state.replans} re-plans"
    if nb is None:
        return f"next cut none known or forecast  ({tally})"
    how = "known" if state.next_boundary_known else "forecast"
    return f"next cut in {max(0.0, nb - state.t_play):4.1f} s ({how}, at {nb:.2f})  {tally}"


WIDTH = 80  # the display fits a classic terminal; wider ones get the same lines


def fit(line: str, width: int = WIDTH) -> str:
    """One line no wider than `width` (what does not fit ends in an ellipsis), so a redraw never wraps."""
    return line if len(line) <= width else line[:width - 1] + "\u2026"


def _output(name: str, ok: bool, why: str = "") -> str:
    return f"{name} ok" if ok else f"{name} LOST" + (f" ({why})" if why else "")


def status_lines(state, sender: dict, lookahead: float, width: int = WIDTH) -> list[str]:
    outs = "  ".join(_output(*o) for o in sender.get("outputs", []))
    bar = f"{state.bar + 1}.{state.beat_in_bar + 1}" if state.tempo else "-"
    lines = [
        f"cuecast live  t {state.t_play:8.2f} s  input {state.t_in:.2f} s  lookahead {lookahead:g} s",
        _emotion(state),
        _boundary(state),
        f"tempo    {state.tempo:6.1f} bpm   bar {bar}",
        f"outputs  {outs or '-'}" + ("" if sender.get("alive", True) else "  (sender STOPPED)"),
        f"sender   {sender.get('priority', '?')}  late p99 {sender.get('late_p99_ms', 0.0):.2f} ms "
        f"(max {sender.get('late_max_ms', 0.0):.2f})",
        f"frames   {state.frames}  dropped {state.dropped}  analysis {state.analysis_ms:5.1f} ms/frame",
    ]
    return [fit(line, width) for line in lines]


class LiveDisplay:
    def __init__(self, state_of: Callable[[], object], sender_of: Callable[[], dict], lookahead: float,
                 stream: TextIO | None = None, interval: float | None = None):
        self.state_of, self.sender_of, self.lookahead = state_of, sender_of, lookahead
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval or (0.25 if self.tty else 1.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cuecast-display", daemon=True)
        self._drawn = 0

    def start(self) -> "LiveDisplay":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.draw()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def draw(self) -> None:
        try:
            width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns) if self.tty else 10_000
            lines = status_lines(self.state_of(), self.sender_of(), self.lookahead, width)
        except Exception as e:  # the display must never take the show down
            lines = [f"cuecast live  (display: {type(e).__name__})"]
        try:
            if self.tty:
                up = f"\x1b[{self._drawn}F" if self._drawn else ""
                self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
                self._drawn = len(lines)
            else:
                self.stream.write(" | ".join(" ".join(l.split()) for l in lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
