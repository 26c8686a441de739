"""What crosses between the engine and its remote controls: commands in, state and events out.

Commands are validated when they are parsed, so a bridge (MQTT, OSC, WebSocket) can answer a bad one at
once and the engine only ever sees well-formed ones. Payloads are data: JSON or OSC arguments, never code.
Events are what the engine tells its bridges: a State snapshot a few times a second, a BoundaryEvent for
each cut whose chord is planned, a BeatEvent for each beat planned, and a Replan when planned music
after some moment was thrown away (events at or after it are void).

Times: `t` fields are media seconds; `wall` fields are time.monotonic() of the moment the thing sounds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

EKMAN6: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
COMMANDS = ("mood", "intensity", "tempo", "mute", "panic", "generator", "cut")
TEMPO_RANGE = (20.0, 300.0)
MAX_HOLD_S = 24 * 3600.0
MAX_AHEAD_S = 600.0  # a cut further ahead than this is a mistake, not a plan


class CommandError(ValueError):
    """A command that cannot be taken: one line saying why (sent back to whoever sent it)."""


# ---- commands ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetMood:
    """Override the picture's emotion for hold_s seconds (None: until ReleaseMood)."""

    valence: float
    arousal: float
    hold_s: float | None = None


@dataclass(frozen=True, slots=True)
class ReleaseMood:
    """The picture's emotion leads again."""


@dataclass(frozen=True, slots=True)
class SetIntensity:
    """0..1: scales note density and velocity (1 = as generated)."""

    value: float


@dataclass(frozen=True, slots=True)
class LockTempo:
    """Hold the tempo at bpm (beats stay on that grid; boundary chords land off it); None releases."""

    bpm: float | None


@dataclass(frozen=True, slots=True)
class Mute:
    on: bool = True


@dataclass(frozen=True, slots=True)
class Panic:
    """End every sounding note now."""


@dataclass(frozen=True, slots=True)
class SwitchGenerator:
    name: str


@dataclass(frozen=True, slots=True)
class CutHint:
    """A cut announced from outside: `in_s` seconds after `sent_wall`, or at media time `t`."""

    in_s: float | None = None
    t: float | None = None
    confidence: float = 1.0
    source: str = "control"
    sent_wall: float = field(default_factory=time.monotonic)


Command = SetMood | ReleaseMood | SetIntensity | LockTempo | Mute | Panic | SwitchGenerator | CutHint


def _number(x, what: str, lo: float, hi: float) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise CommandError(f"{what} must be a number (got {json.dumps(x)[:40]})")
    try:
        v = float(x)
    except (ValueError, OverflowError):
        raise CommandError(f"{what} must be a number (got {str(x)[:40]!r})") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise CommandError(f"{what} must be in {lo:g}..{hi:g} (got {v:g})")
    return v


def _flag(x, what: str) -> bool:
    if isinstance(x, bool):
        return x
    if isinstance(x, (int, float)) and x in (0, 1):
        return bool(x)
    if isinstance(x, str) and x.strip().lower() in ("true", "false", "on", "off", "1", "0"):
        return x.strip().lower() in ("true", "on", "1")
    raise CommandError(f"{what} must be true or false (got {json.dumps(x)[:40]})")


def _decode(payload: bytes | str) -> object:
    """JSON, or a bare word/number as many MQTT tools send it; empty is None."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("payload is not UTF-8 text") from None
    text = str(payload).strip()
    if not text:
        return None
    if len(text) > 4096:
        raise CommandError(f"payload too long ({len(text)} characters)")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        if text[0] in "{[\"":
            raise CommandError(f"payload is not valid JSON: {text[:60]!r}") from None
        return text  # a bare word such as `arranger`, `release`, `on`


def parse_command(name: str, payload: bytes | str | object, *, source: str = "control", raw: bool = True) -> Command:
    """The command `name` (mood, intensity, tempo, mute, panic, generator, cut) from its payload.

    raw=True: payload is the message text (JSON or a bare value); raw=False: an already decoded value."""
    name = name.strip().strip("/")
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name[:40]!r} (commands: {', '.join(COMMANDS)})")
    data = _decode(payload) if raw else payload
    try:
        return _PARSERS[name](data, source)
    except CommandError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError) as e:  # a payload shape nobody foresaw: still one line
        raise CommandError(f"{name}: bad payload ({type(e).__name__}: {e})"[:200]) from None


def _mood(d, source) -> Command:
    if isinstance(d, str) and d.strip().lower() == "release":
        return ReleaseMood()
    if not isinstance(d, dict):
        raise CommandError('mood takes {"valence": V, "arousal": A, "hold_s": S} or {"release": true}')
    if d.get("release") is not None:
        if not _flag(d["release"], "mood.release"):
            raise CommandError('mood: "release" must be true')
        return ReleaseMood()
    unknown = set(d) - {"valence", "arousal", "hold_s"}
    if unknown:
        raise CommandError(f"mood: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if "valence" not in d or "arousal" not in d:
        raise CommandError("mood needs both valence and arousal (each -1..1)")
    hold = d.get("hold_s")
    return SetMood(_number(d["valence"], "valence", -1, 1), _number(d["arousal"], "arousal", -1, 1),
                   None if hold is None else _number(hold, "hold_s", 0.05, MAX_HOLD_S))


def _value(d, key: str):
    return d.get(key) if isinstance(d, dict) else d


def _intensity(d, source) -> Command:
    return SetIntensity(_number(_value(d, "value"), "intensity", 0, 1))


def _tempo(d, source) -> Command:
    v = _value(d, "bpm")
    if v is None or (isinstance(v, str) and v.strip().lower() in ("null", "none", "free", "release", "off")):
        return LockTempo(None)
    return LockTempo(_number(v, "tempo (bpm)", *TEMPO_RANGE))


def _mute(d, source) -> Command:
    v = _value(d, "on")
    return Mute(True if v is None else _flag(v, "mute"))


def _panic(d, source) -> Command:
    return Panic()


def _generator(d, source) -> Command:
    v = _value(d, "name")
    if not isinstance(v, str) or not v.strip() or len(v) > 40:
        raise CommandError('generator takes a name, e.g. "arranger" or "transformer"')
    return SwitchGenerator(v.strip())


def _cut(d, source) -> Command:
    """The hint payloads: empty (now), seconds from now, {"in": s} or {"t": media time}, optional confidence."""
    if d is None:
        return CutHint(in_s=0.0, source=source)
    if isinstance(d, dict):
        conf = _number(d.get("confidence", 1.0), "confidence", 0, 1)
        if "t" in d:
            return CutHint(t=_number(d["t"], "t", -1e9, 1e9), confidence=conf, source=source)
        if "in" in d:
            return CutHint(in_s=_number(d["in"], "in", -MAX_AHEAD_S, MAX_AHEAD_S), confidence=conf, source=source)
        raise CommandError('cut takes {"in": seconds} or {"t": media_time}')
    return CutHint(in_s=_number(d, "cut (seconds from now)", -MAX_AHEAD_S, MAX_AHEAD_S), source=source)


_PARSERS = {"mood": _mood, "intensity": _intensity, "tempo": _tempo, "mute": _mute, "panic": _panic,
            "generator": _generator, "cut": _cut}


def osc_command(name: str, args: tuple | list, *, source: str = "osc") -> Command:
    """The same commands from OSC arguments: `/cuecast/set/mood V A [HOLD_S]` or `release`,
    `/cuecast/set/intensity X`, `/cuecast/set/tempo BPM` (none or 0 releases), `/cuecast/set/mute 1|0`,
    `/cuecast/set/panic`, `/cuecast/set/generator NAME`, `/cuecast/set/cut [SECONDS]`; a single string
    argument holding JSON is read as the MQTT payload."""
    args = list(args)
    if len(args) == 1 and isinstance(args[0], str) and args[0].lstrip()[:1] in "{[":
        return parse_command(name, args[0], source=source)
    name = name.strip().strip("/")
    if name == "mood" and len(args) in (2, 3):
        return parse_command("mood", {"valence": args[0], "arousal": args[1],
                                      **({"hold_s": args[2]} if len(args) == 3 else {})}, raw=False, source=source)
    if name == "tempo" and args and not isinstance(args[0], str) and args[0] == 0:
        return LockTempo(None)
    if len(args) > 1:
        raise CommandError(f"{name}: too many arguments ({len(args)})")
    return parse_command(name, args[0] if args else None, raw=False, source=source)


# ---- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """The engine right now, a few times a second."""

    t: float  # media time playing
    valence: float
    arousal: float
    probs: tuple[float, ...]  # Ekman-6 (EKMAN6 order); () before the first window
    tempo_bpm: float
    bar: int  # bars counted from the start, 1-based (a cut starts a new bar)
    beat: int  # beat in the bar, 1-based
    beat_phase: float  # 0..1 through the current beat
    next_boundary_in: float | None  # seconds until the next planned cut, None when none is known or forecast
    next_boundary_known: bool  # False: the next one is a forecast
    generator: str
    muted: bool
    intensity: float
    mood_held: bool  # the mood comes from a command, not the picture
    tempo_locked: bool
    wall: float = 0.0  # time.monotonic() of the snapshot

    def to_json(self) -> dict:
        return {
            "t": round(self.t, 3), "valence": round(self.valence, 4), "arousal": round(self.arousal, 4),
            "probs": {k: round(float(p), 4) for k, p in zip(EKMAN6, self.probs)},
            "tempo_bpm": round(self.tempo_bpm, 2), "bar": self.bar, "beat": self.beat,
            "beat_phase": round(self.beat_phase, 3),
            "next_boundary_in": None if self.next_boundary_in is None else round(self.next_boundary_in, 3),
            "next_boundary": None if self.next_boundary_in is None else ("known" if self.next_boundary_known else "forecast"),
            "generator": self.generator, "muted": self.muted, "intensity": round(self.intensity, 3),
            "mood_held": self.mood_held, "tempo_locked": self.tempo_locked,
        }


@dataclass(frozen=True, slots=True)
class BoundaryEvent:
    """A cut whose chord is planned: kind, media time, and when the chord plays."""

    t: float  # media time of the cut
    kind: str
    source: str
    chord_t: float  # media time the chord starts (the cut itself, or later when it came too late)
    chord_wall: float  # time.monotonic() at which the chord sounds
    decided_at: float | None = None

    def to_json(self, now_wall: float | None = None) -> dict:
        now_wall = time.monotonic() if now_wall is None else now_wall
        d = {"t": round(self.t, 3), "kind": self.kind, "source": self.source, "chord_t": round(self.chord_t, 3),
             "chord_in": round(self.chord_wall - now_wall, 3)}
        if self.decided_at is not None:
            d["decided_at"] = round(self.decided_at, 3)
        return d


@dataclass(frozen=True, slots=True)
class BeatEvent:
    """A beat as planned (ahead of the playhead by the conductor's horizon)."""

    t: float
    wall: float
    bar: int  # 1-based
    beat: int  # 1-based, in the bar
    bpm: float


@dataclass(frozen=True, slots=True)
class Replan:
    """Music planned at or after `t` (wall time `wall`) was dropped: events from there on are void."""

    t: float
    wall: float


Event = State | BoundaryEvent | BeatEvent | Replan
