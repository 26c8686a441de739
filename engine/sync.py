"""Playing to someone else's clock: the music stays on an external master's beat grid and pauses while the
master is stopped.

A master is anything with `grid_at(wall) -> (bpm, wall of its next beat, that beat's index) | None` and
`running` (False while stopped): MIDI clock in (streams.midi_clock_in.MidiClockIn) or a Link session followed
(LinkFollower). The conductor then takes every beat from the master (its tempo, its bar) and never bends the
tempo to land a cut: boundary chords land off the grid, on the cut.
"""

from __future__ import annotations


def follow(engine, clock, master) -> None:
    """Put `engine` on `master`'s grid; `clock` maps media time to wall time (RealtimeClock.wall_of)."""

    def grid(t: float):
        try:
            wall = clock.wall_of(t)
        except RuntimeError:  # the clock starts with the first frame
            return None
        g = master.grid_at(wall)
        if g is None:
            return None
        bpm, next_wall, index = g
        return bpm, t + (next_wall - wall), index

    engine.conductor.grid = grid
    engine.control.transport = lambda: master.running is not False


class LinkFollower:
    """Follows an Ableton Link session (the `link` extra, aalink): its tempo and beat phase (quantum: one bar),
    and its start/stop when the session shares it. It never sets the session's tempo: joining a session leaves
    it as it was."""

    def __init__(self, quantum: float = 4.0):
        import asyncio

        from aalink import Link

        # aalink wants a loop for its awaitables; we only read its state, so this one never runs
        self._loop = asyncio.new_event_loop()
        self.link = Link(120.0, self._loop)
        self.link.quantum = quantum
        self.link.start_stop_sync_enabled = True
        self.link.enabled = True

    @property
    def running(self) -> bool | None:
        if not self.link.start_stop_sync_enabled or self.link.num_peers == 0:
            return None
        return bool(self.link.playing) or None  # a session that does not share start/stop plays on

    def grid_at(self, wall: float):
        import time

        if self.link.num_peers == 0:
            return None  # alone there is no session to follow yet: the music keeps its own tempo
        now = time.monotonic()
        bpm = float(self.link.tempo)
        at = float(self.link.beat) + (wall - now) * bpm / 60.0
        nxt = int(at + 0.02) + 1 if at >= 0 else -int(-at) + 1
        return bpm, wall + (nxt - at) * 60.0 / bpm, nxt

    def close(self) -> None:
        self.link.enabled = False
        self._loop.close()
