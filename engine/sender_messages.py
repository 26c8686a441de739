"""What the engine and the sender process say to each other, as typed messages, and how they travel.

Messages cross the socket as JSON (data, never code: no pickle between the processes either); each one is
[type name, fields]. The sender also publishes a few numbers through a small shared file (StatusSlot), so
the engine's display never waits on the socket.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import IntEnum
from typing import NamedTuple


class NoteEvent(NamedTuple):
    """One note for the sender, in wall time (time.monotonic())."""

    on: float
    off: float
    channel: int  # 0..15 as the wire counts
    pitch: int
    velocity: int
    id: int  # unique per scheduler: pairs the note-off with its note-on


@dataclass(slots=True)
class Setup:
    outputs: list[str]
    latency_s: list[float]
    channels: dict[str, list[int | None]]  # instrument -> [channel 0..15, program, volume or None]
    clock_out: bool
    record: bool
    realtime: bool
    synth_options: dict
    client_name: str
    status_path: str
    link: bool


@dataclass(slots=True)
class Notes:
    events: list[NoteEvent]


@dataclass(slots=True)
class Tempo:
    """From wall time `wall` the tempo is bpm, and `wall` falls on conductor beat `beat`."""

    wall: float
    bpm: float
    beat: float


@dataclass(slots=True)
class Cut:
    """Drop what starts at/after wall; end at wall what sounds across it."""

    wall: float


@dataclass(slots=True)
class Close:
    drain: bool  # True: play out what is scheduled first; False: stop now


@dataclass(slots=True)
class Ready:
    priority: str


@dataclass(slots=True)
class Failed:
    reason: str  # one line for the user


@dataclass
class SendReport:
    """What the sender did, sent back when it closes."""

    # send time - deadline, seconds: note messages, notes the engine handed over past their deadline, MIDI
    # clock ticks. The most recent LATE_KEEP of each (a night-long run stays flat); *_count are all of them.
    lateness: list[float] = field(default_factory=list)
    handover_late: list[float] = field(default_factory=list)
    clock_lateness: list[float] = field(default_factory=list)
    lateness_count: int = 0
    handover_count: int = 0
    clock_count: int = 0
    lateness_max: float = 0.0
    log: list[tuple[float, bytes]] = field(default_factory=list)  # (wall time, message) sent on output 0
    reconnects: int = 0
    panics: int = 0
    priority: str = "normal"

    def percentiles_ms(self, which: str = "notes") -> dict[str, float]:
        xs = sorted(self.lateness if which == "notes" else self.clock_lateness)
        if not xs:
            return {}
        pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000  # noqa: E731
        n = max(len(xs), self.lateness_count if which == "notes" else self.clock_count)
        top = max(xs[-1], self.lateness_max) if which == "notes" else xs[-1]
        return {"n": n, "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": top * 1000}


@dataclass(slots=True)
class Closed:
    report: SendReport


MESSAGES = {cls.__name__: cls for cls in (Setup, Notes, Tempo, Cut, Close, Ready, Failed, Closed)}


def encode(msg) -> bytes:
    if isinstance(msg, Closed):
        r = asdict(msg.report)
        r["log"] = [(t, m.hex()) for t, m in msg.report.log]
        body = {"report": r}
    else:
        body = {f.name: getattr(msg, f.name) for f in fields(msg)}
    return json.dumps([type(msg).__name__, body], separators=(",", ":")).encode()


def decode(data: bytes):
    """The message in `data`; ValueError for anything that is not one."""
    try:
        name, body = json.loads(data)
        cls = MESSAGES[name]
        if cls is Notes:
            return Notes([NoteEvent(*e) for e in body["events"]])
        if cls is Closed:
            r = body["report"]
            r["log"] = [(t, bytes.fromhex(m)) for t, m in r["log"]]
            return Closed(SendReport(**r))
        return cls(**body)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a sender message: {e}") from None


class OutputState(IntEnum):
    """How an output is, in its status slot: working, or why it is lost."""

    OK = 1
    PORT_GONE = 0
    DISCONNECTED = -1  # JACK: our connection to the port was removed (jack_disconnect, a patchbay)
    SERVER_GONE = -2  # JACK: the server itself went away

    @property
    def why(self) -> str:
        return {1: "", 0: "port gone", -1: "connection removed", -2: "JACK server gone"}[int(self)]


class StatusSlot(IntEnum):
    """Places in the shared status file (float64 each); then one OutputState per output from OUTPUTS on."""

    SENT = 0
    LATE_P99_MS = 1
    LATE_MAX_MS = 2
    PRIORITY = 3
    ALIVE = 4
    RECONNECTS = 5
    TEMPO = 6
    TICKS = 7
    LOSSES = 8  # how many times an output was lost (a loss and a return between two looks still counts)
    OUTPUTS = 9


class Priority(IntEnum):
    NORMAL = 0
    NICE = 1
    REALTIME = 2

    @property
    def label(self) -> str:
        return {0: "normal", 1: "nice", 2: "realtime (SCHED_FIFO)"}[int(self)]
