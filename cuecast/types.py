"""The small data types that cross stage boundaries, and the protocol of every stage.

Every stage (streams, models, engine) may import this module; it imports nothing of the project.
All times are media seconds: presentation time of the input, measured from its first frame.

One verb per kind of work: every per-frame stage has `process_frame`, every audio consumer
`process_audio`, every stage that holds back a decision `flush`; a source has `recv`/`close`, a sink
takes notes with `notes`, a generator takes one `step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, NamedTuple, Protocol, Sequence

import numpy as np

EKMAN6: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise")

# Instruments every generator writes. The config maps each to a MIDI channel and GM program.
INSTRUMENTS: tuple[str, ...] = ("drums", "bass", "chords", "melody", "pad")


@dataclass(slots=True)
class Frame:
    """One decoded video frame, downscaled to the analysis size."""

    t: float  # media seconds from the first frame (pts * time_base - first pts)
    index: int  # decode order, counting from 0; gaps in t (dropped frames) are not gaps here
    image: np.ndarray  # H x W x 3 uint8 RGB at analysis size, display aspect ratio applied
    source_size: tuple[int, int] = (0, 0)  # (width, height) as displayed, before downscaling
    picture: object | None = None  # the decoded av.VideoFrame at full size, only from keep_picture sources
    arrived: float = 0.0  # time.monotonic() when the source received it (0: unknown); the live clock's anchor


@dataclass(slots=True)
class AudioChunk:
    """Decoded audio of the input, mono float32 in [-1, 1]."""

    t: float  # media seconds of the first sample
    samples: np.ndarray
    rate: int


@dataclass(slots=True)
class InputSound:
    """The input's own sound as decoded (any rate, any channels), for a writer of the output picture
    (--video-out mixes it under the music at the output's rate and channels). Only from keep_picture
    sources; never analysed: a source's queue hands it to its tap and no further."""

    t: float  # media seconds of the first sample
    frame: object  # the decoded av.AudioFrame


@dataclass(slots=True)
class Boundary:
    """A scene boundary the music should hit.

    kind: "hard" (instant cut), "fade" (to or from black), "dissolve", or "hint" (announced from outside).
    For gradual transitions `start`/`end` span the transition and `t` is where the music lands: where the
    blend begins for a dissolve and a fade in, where the picture reaches black for a fade out.
    """

    t: float
    kind: str = "hard"
    start: float | None = None
    end: float | None = None
    decided_at: float | None = None  # media time of the frame at which the detector decided
    source: str = "detector"  # "detector", "mqtt", "osc", "obs", "forecast", ...
    confidence: float = 1.0

    def to_json(self) -> dict:
        d = {"t": round(self.t, 4), "kind": self.kind, "source": self.source}
        if self.start is not None:
            d["start"] = round(self.start, 4)
        if self.end is not None:
            d["end"] = round(self.end, 4)
        if self.decided_at is not None:
            d["decided_at"] = round(self.decided_at, 4)
        if self.confidence != 1.0:
            d["confidence"] = round(self.confidence, 4)
        return d


@dataclass(slots=True)
class Forecast:
    """Hazard of the next cut after media time `t`: hazard[i] is P(cut in bin i | none before)."""

    t: float
    bin_s: float
    hazard: np.ndarray

    def probability_by(self, horizon: float) -> float:
        """P(a cut within `horizon` seconds of t)."""
        n = min(len(self.hazard), max(0, int(math.ceil(horizon / self.bin_s))))
        return float(1.0 - np.prod(1.0 - self.hazard[:n]))

    def most_likely(self) -> tuple[float, float]:
        """(media time, probability) of the single most likely bin for the next cut."""
        survive = np.concatenate([[1.0], np.cumprod(1.0 - self.hazard)[:-1]])
        p = survive * self.hazard
        i = int(np.argmax(p))
        return self.t + (i + 0.5) * self.bin_s, float(p[i])


@dataclass(slots=True)
class EmotionWindow:
    """Emotion of one analysis window [start, end)."""

    start: float
    end: float
    probs: tuple[float, ...]  # Ekman-6, in EKMAN6 order, summing to 1
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]
    signals: tuple[str, ...] = ()  # which signals contributed: "picture", "faces", "audio", ...
    neutral: float = 0.0  # [0, 1] share of the window that reads as no emotion in particular (beside probs)

    def to_json(self) -> dict:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "probs": {k: round(float(p), 4) for k, p in zip(EKMAN6, self.probs)},
            "neutral": round(float(self.neutral), 4),
            "valence": round(self.valence, 4),
            "arousal": round(self.arousal, 4),
            "signals": list(self.signals),
        }


@dataclass(frozen=True, slots=True)
class Instrument:
    """Where an instrument plays: MIDI channel, General MIDI program, CC7 volume."""

    channel: int  # 1..16 as musicians count them; drums on 10
    program: int = 0  # General MIDI program 0..127
    volume: int | None = None  # CC7 0..127; None leaves the device's

    @staticmethod
    def of(spec: "Instrument | Sequence[int | None]") -> "Instrument":
        """An Instrument from itself or a (channel, program[, volume]) sequence (tests, scripts)."""
        if isinstance(spec, Instrument):
            return spec
        return Instrument(int(spec[0]), int(spec[1]) if len(spec) > 1 else 0,
                          None if len(spec) < 3 or spec[2] is None else int(spec[2]))


DRUM_CHANNEL = 10  # the General MIDI drum kit, as musicians count channels


def assign_channels(instruments: dict[str, Instrument], names=()) -> dict[str, Instrument]:
    """The instruments given plus every one of `names` they lack: the drums on channel 10, any other on the
    lowest channel nobody uses (channel 1 when all are taken). The one rule for every MIDI writer."""
    out = {name: Instrument.of(spec) for name, spec in instruments.items()}
    used = {i.channel for i in out.values()}
    for name in sorted(set(names) - set(out)):
        if name == "drums":
            out[name] = Instrument(DRUM_CHANNEL)
            continue
        free = [c for c in range(1, 17) if c != DRUM_CHANNEL and c not in used]
        out[name] = Instrument(free[0] if free else 1)
        used.add(out[name].channel)
    return out


@dataclass(slots=True, order=True)
class Note:
    """A note the generator produced, in media seconds. Drums use GM percussion pitches."""

    start: float
    end: float
    pitch: int
    velocity: int
    instrument: str  # one of INSTRUMENTS


class TempoPoint(NamedTuple):
    """From media time t the tempo is bpm, and t falls on beat number `beat` (counted from the start).

    A tempo map is a list of these in time order: the conductor makes it, the sinks receive it
    (NoteSink.tempo), the MIDI file and MIDI clock are written from it."""

    t: float
    bpm: float
    beat: float = 0.0


@dataclass(slots=True)
class StepPlan:
    """What the conductor tells the generator for one step (one beat, or the part of a beat up to a boundary).

    The generator returns the notes that start in [t0, t1); they may sound past t1.
    """

    t0: float
    t1: float
    tempo_bpm: float
    beat: int  # beat index since the start of the piece
    beat_in_bar: int  # 0 .. beats_per_bar-1
    beats_per_bar: int
    valence: float
    arousal: float
    next_boundary: float | None = None  # media time of the next boundary at or after t0 (known or forecast)
    boundary_known: bool = True  # False when next_boundary is a forecast
    at_boundary: bool = False  # a boundary falls exactly at t0: start the boundary chord here
    boundary_kind: str = "hard"
    on_grid: bool = True  # False when t0 is a boundary that fell between beats

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm

    def time_to_boundary(self, t: float | None = None) -> float:
        """Seconds from t (default t0) to the next boundary; inf when none is known or forecast."""
        if self.next_boundary is None:
            return math.inf
        return max(0.0, self.next_boundary - (self.t0 if t is None else t))


@dataclass(slots=True)
class Timeline:
    """Everything the engine decided, for timeline.json and report.png."""

    duration: float = 0.0
    boundaries: list[Boundary] = field(default_factory=list)
    emotion: list[EmotionWindow] = field(default_factory=list)
    tempo: list[TempoPoint] = field(default_factory=list)  # at each change
    chords: list[float] = field(default_factory=list)  # chord onset times the generator reported
    forecasts: list[Forecast] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def is_chord_onset(notes: Sequence[Note], t: float, *, window: float = 0.03, min_hold: float = 0.4) -> bool:
    """True when 3+ distinct pitch classes start within `window` s after t, each held >= min_hold s."""
    pcs = {n.pitch % 12 for n in notes if n.instrument != "drums" and t <= n.start <= t + window and n.end - n.start >= min_hold}
    return len(pcs) >= 3


# ---- stage protocols ----------------------------------------------------------------------------


class SourceError(Exception):
    """The input cannot be opened or read (a bad spec, a missing file or device): a one-line reason."""


class EndOfStream(Exception):
    """Source.recv() raises it at the end of the input."""


@dataclass(slots=True)
class SourceInfo:
    kind: str  # "file", "device", "lavfi", "network", "webrtc"
    name: str  # what the user gave (path, URL, spec), for messages
    width: int = 0  # as displayed; 0 until known (a WebRTC peer not yet connected)
    height: int = 0
    fps: float = 0.0  # average / nominal; 0 when unknown
    has_audio: bool = False
    live: bool = False  # True: arrives in real time, the engine drops old frames; False: read as fast as wanted
    duration: float = 0.0  # 0 when unknown / endless


class Source(Protocol):
    """Frames and audio chunks in presentation order (like aiortc's MediaStreamTrack)."""

    info: SourceInfo
    dropped: int  # frames the source itself dropped (live queues)

    async def recv(self) -> Frame | AudioChunk:
        """The next item; raises EndOfStream at the end of the input, SourceError when it fails."""
        ...

    async def close(self) -> None:
        """Idempotent; safe from any way out."""
        ...

    def __aiter__(self) -> AsyncIterator[Frame | AudioChunk]: ...


class CutDetector(Protocol):
    """Scene boundaries, online: one frame at a time."""

    def process_frame(self, frame: Frame) -> list[Boundary]:
        """Boundaries decided with this frame (a hard cut is decided one frame after it)."""
        ...

    def hard_candidate(self, t: float) -> float | None:
        """A hard cut opened on the frame at t that the next frame will confirm or refuse, or None."""
        ...

    @property
    def hard_pending(self) -> bool: ...

    def flush(self) -> list[Boundary]:
        """Boundaries still held back at the end of the input."""
        ...


class Forecaster(Protocol):
    """The hazard of the next cut, from the shot history, the picture and the audio."""

    def process_frame(self, frame: Frame, boundaries: list[Boundary]) -> Forecast | None:
        """Take a frame and the boundaries decided with it; a Forecast when a new one is due."""
        ...

    def process_audio(self, chunk: AudioChunk) -> None: ...


class EmotionStage(Protocol):
    """Windowed emotion of the picture (and the audio)."""

    def process_frame(self, frame: Frame) -> list[EmotionWindow]:
        """The windows this frame completed."""
        ...

    def process_audio(self, chunk: AudioChunk) -> None: ...

    def observe_cut(self, t: float) -> None: ...

    def flush(self) -> list[EmotionWindow]: ...


class Generator(Protocol):
    """A music generator driven one step at a time (see StepPlan)."""

    name: str

    def reset(self, seed: int) -> None: ...

    def step(self, plan: StepPlan) -> list[Note]: ...

    def rewind(self, t: float) -> None:
        """Forget what was generated at or after media time t (a re-plan follows)."""
        ...


class NoteSink(Protocol):
    """Where the engine's notes go: a MIDI file in render, a real-time scheduler in live.

    The engine calls notes() ahead of the playhead (up to the conductor's horizon), tempo() at every tempo
    change, cut_at() when an unplanned boundary forces a re-plan, and close() exactly once at the end
    (also on error and interrupt) — after close() no note may still sound.
    """

    def tempo(self, t: float, bpm: float, beat: float) -> None:
        """From media time t the tempo is bpm, and t falls on beat number `beat` (a TempoPoint; for MIDI clock)."""
        ...

    def notes(self, notes: list[Note]) -> None: ...

    def cut_at(self, t: float) -> None:
        """Drop events not yet sent at or after t and end the notes still sounding at t."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Where the playhead is, and how time runs: as fast as the work goes (render) or with the wall (live).

    The engine asks the clock instead of asking which of the two it is."""

    lookahead: float
    t_in: float  # the newest media time analysed

    def arrived(self, t: float, wall: float) -> None:
        """The frame of media time t reached the engine's process at time.monotonic() `wall`."""
        ...

    def observe(self, t_in: float) -> None:
        """The frame at t_in is being analysed."""
        ...

    def playhead(self) -> float: ...

    @property
    def started(self) -> bool: ...

    def editable_from(self) -> float | None:
        """The earliest media time whose music can still change (None: all not yet written)."""
        ...

    def stop_at(self, stopped: bool) -> float | None:
        """Where the music ends when the input ends (stopped=False) or the engine was stopped: None plays
        the piece out to the end of the input, a time cuts it off there."""
        ...

    async def keep_time(self, plan: Callable[[], Awaitable[None]], stopping: Callable[[], bool]) -> None:
        """Call plan() as time passes, even while no frame comes (live); offline it returns at once."""
        ...


@dataclass(slots=True)
class Stages:
    """The analysis stages and the generator of one engine (engine/stages.py builds them from the config)."""

    detector: CutDetector
    emotion: EmotionStage | None
    forecaster: Forecaster | None
    generator: Generator
