"""Faults seen while playing live: an output lost and back, the JACK server gone, the sender process dead.

Each is said on stderr as it happens (one line), kept for the end of the run, and turns the exit status
non-zero: a show-control script must see that the set had a fault, even one that healed. A dead JACK
server or a dead sender leaves nothing to play to: the run stops. The sender itself already ended what
sounded wherever a note-off could still get through, and sends all-notes-off, programs and volumes
again when an output comes back.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Callable

SERVER_GONE = "JACK server gone"


def warn_line(message: str) -> None:
    print(f"cuecast: warning: {message}", file=sys.stderr, flush=True)


class OutputWatch:
    """Looks at the sender's status a few times a second (status: RealtimeScheduler.status)."""

    def __init__(self, status: Callable[[], dict], playhead: Callable[[], float], on_fatal: Callable[[], None],
                 closed: Callable[[], bool] = lambda: False, warn: Callable[[str], None] = warn_line):
        self.status, self.playhead, self.on_fatal, self.warn = status, playhead, on_fatal, warn
        self.closed = closed  # the sender was told to end: its going is then no fault
        self.faults: list[str] = []  # one entry per loss, in order
        self.fatal: str | None = None  # why the run had to stop
        self._lost: dict[str, str] = {}  # output -> why, while it is lost
        self._losses = 0

    def check(self) -> None:
        st = self.status()
        t = self.playhead()
        seen = 0
        for name, ok, *why in st.get("outputs", []):
            why = why[0] if why else ""
            if not ok and name not in self._lost:
                self._lost[name] = why
                seen += 1
                self.faults.append(f"{name} lost at {t:.1f} s ({why or 'port gone'})")
                if why == SERVER_GONE:
                    self._stop(f"the JACK server went away at {t:.1f} s; stopped (note-offs went to every "
                               "output still there)")
                else:
                    self.warn(f"{name} lost at {t:.1f} s: {why or 'port gone'}; its notes were ended where they "
                              "could still be reached")
            elif ok and name in self._lost:
                del self._lost[name]
                self.warn(f"{name} back at {t:.1f} s: all notes off, then programs and volumes sent again")
        losses = int(st.get("losses", 0))
        missed = losses - self._losses - seen  # lost and back again between two looks
        if missed > 0:
            self.faults.append(f"{missed} short loss{'es' if missed > 1 else ''} of an output before {t:.1f} s")
            self.warn(f"an output was lost and came back before {t:.1f} s")
        self._losses = max(self._losses, losses)
        if not st.get("alive", True) and not self.closed() and self.fatal is None:
            self.faults.append(f"the MIDI sender ended at {t:.1f} s")
            self._stop(f"the MIDI sender process ended unexpectedly at {t:.1f} s; stopped")

    def _stop(self, why: str) -> None:
        if self.fatal is None:
            self.fatal = why
            self.on_fatal()

    async def run(self, every: float = 0.1) -> None:
        while True:
            try:
                self.check()
            except Exception as e:  # the watch must never take the show down; but it says so
                self.warn(f"the output watch failed ({type(e).__name__}: {e}); faults are no longer reported")
                return
            await asyncio.sleep(every)

    def exit_line(self) -> str | None:
        """The one error line for the end of the run, or None when nothing went wrong."""
        if self.fatal is not None:
            return self.fatal
        if not self.faults:
            return None
        still = f"; still lost: {', '.join(self._lost)}" if self._lost else "; all came back"
        return f"{len(self.faults)} output fault{'s' if len(self.faults) > 1 else ''} during the run: " \
               f"{self.faults[0]}{' ...' if len(self.faults) > 1 else ''}{still}"
