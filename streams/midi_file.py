"""MIDI file sink: collect the engine's notes and tempo map, write a Type-1 Standard MIDI File.

Times in the file follow the tempo map, so that a DAW's beat grid follows the engine's tempo, while every
note still lands at its media second: seconds are converted to ticks through the same integer tempo events
a reader will see, so a note round-trips within half a tick (0.26 ms at 120 bpm with PPQ 960). Media
seconds win where the two disagree: a bar the conductor restarts at an off-grid cut is not a bar line here.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import mido

from cuecast.streams.files import replacing
from cuecast.midi import Status
from cuecast.types import DRUM_CHANNEL, Instrument, Note, TempoPoint, assign_channels

PPQ = 960
DEFAULT_BPM = 120.0
CONDUCTOR_NAME = "cuecast tempo"



class MidiFileError(Exception):
    """The MIDI file cannot be written or read (the engine reports it as a user error)."""


class MidiFileSink:
    """A NoteSink that keeps everything in memory for write_midi (used by `cuecast render`)."""

    def __init__(self) -> None:
        self._notes = _NoteList()
        self._tempo: list[TempoPoint] = []
        self.closed = False

    def tempo(self, t: float, bpm: float, beat: float) -> None:
        """From t on the tempo is bpm: a later call at an earlier time replaces the planned changes after it."""
        if not (math.isfinite(t) and math.isfinite(bpm) and bpm > 0):
            raise ValueError(f"tempo({t}, {bpm}) needs a finite time and a positive bpm")
        self._tempo = [e for e in self._tempo if e.t < t]
        self._tempo.append(TempoPoint(float(t), float(bpm), float(beat)))

    def cut_at(self, t: float) -> None:
        """Forget notes starting at/after t, end notes sounding across t at t, drop tempo changes after t."""
        kept = []
        for n in self._notes:
            if n.start >= t:
                continue
            if n.end > t:  # copy: the generator may still hold the original object
                n = Note(n.start, t, n.pitch, n.velocity, n.instrument)
            kept.append(n)
        self._notes = _NoteList(sorted(kept))  # shortened ends can change the order
        self._tempo = [e for e in self._tempo if e.t <= t]

    def close(self) -> None:
        self.closed = True

    # `.notes` is both the protocol method and, per the engine's interface, the sorted list of notes;
    # a callable list keeps both working: sink.notes([...]) adds, sink.notes is the sorted list.
    # The list is kept sorted as notes arrive, so neither use sorts everything again (the conductor
    # adds notes every beat).
    @property  # type: ignore[override]
    def notes(self) -> "_NoteList":  # noqa: F811
        return self._notes

    @property
    def tempo_map(self) -> list[TempoPoint]:
        return list(self._tempo)


class _NoteList(list):
    """The notes of a MidiFileSink, kept sorted; calling it adds notes (NoteSink.notes)."""

    def __call__(self, notes: Iterable[Note]) -> None:
        for n in notes:  # notes arrive mostly in time order: each lands near the end
            bisect.insort(self, n)


# ---------------------------------------------------------------------------------------------------
# Tempo map: media seconds <-> ticks


@dataclass(frozen=True, slots=True)
class _Segment:
    tick: int  # where this tempo starts, in ticks
    sec: float  # where a reader of the file puts that tick, in seconds
    usec_per_beat: int  # the integer tempo the file stores

    @property
    def sec_per_tick(self) -> float:
        return self.usec_per_beat / 1e6 / PPQ


def _segments(tempo_map: Sequence[TempoPoint]) -> list[_Segment]:
    """Integer tempo events placed so that each lands within half a tick of its media time.

    Each segment starts from where a reader will compute the previous one, so rounding never accumulates.
    The first tempo holds from t=0 (before the engine's first tempo call there is no music anyway).
    """
    entries = sorted((float(t), float(bpm)) for t, bpm, _beat in tempo_map) or [(0.0, DEFAULT_BPM)]
    segs = [_Segment(0, 0.0, _usec(entries[0][1]))]
    for t, bpm in entries[1:]:
        cur = segs[-1]
        tick = cur.tick + max(0, round((t - cur.sec) / cur.sec_per_tick))
        usec = _usec(bpm)
        if tick == cur.tick:  # two changes on one tick: the later one wins
            segs[-1] = _Segment(cur.tick, cur.sec, usec)
        elif usec != cur.usec_per_beat:
            segs.append(_Segment(tick, cur.sec + (tick - cur.tick) * cur.sec_per_tick, usec))
    return segs


def _usec(bpm: float) -> int:
    return max(1, min(0xFFFFFF, int(round(60e6 / bpm))))


def _to_tick(segs: list[_Segment], secs: list[float], t: float) -> int:
    s = segs[max(0, bisect.bisect_right(secs, t) - 1)]
    return s.tick + int(round((t - s.sec) / s.sec_per_tick))


# ---------------------------------------------------------------------------------------------------
# Writing


def resolve_channels(channel_map: dict[str, Instrument], notes: Sequence[Note | str]) -> dict[str, Instrument]:
    """Every instrument the notes (or names) use, checked; the ones the map lacks as assign_channels places them."""
    out = assign_channels(channel_map, {n if isinstance(n, str) else n.instrument for n in notes})
    for name, i in out.items():
        if not (1 <= i.channel <= 16 and 0 <= i.program <= 127):
            raise MidiFileError(f"instrument {name!r}: channel must be 1..16 and program 0..127, got {i}")
    return out


def note_spans(notes: Sequence[Note], chan: dict[str, Instrument], to_tick, end_tick: int
                ) -> dict[str, list[tuple[int, int, int, int]]]:
    """Per instrument: (on_tick, off_tick, pitch, velocity), clipped to the file and free of same-key overlap.

    Overlap is resolved per (channel, pitch), across instruments sharing a channel: a re-strike ends the
    sounding note first, so every note-on has exactly one note-off and nothing can hang.
    """
    by_key: dict[tuple[int, int], list[tuple[int, int, int, str]]] = {}
    for n in notes:
        if not (math.isfinite(n.start) and math.isfinite(n.end)) or not 0 <= n.pitch <= 127:
            continue
        on = max(0, to_tick(n.start))
        off = min(end_tick, to_tick(n.end))
        if on >= end_tick:
            continue
        off = max(off, on + 1)  # a zero-length note still gets its own note-off after the note-on
        if off > end_tick:
            continue
        vel = max(1, min(127, int(n.velocity)))
        by_key.setdefault((chan[n.instrument].channel, n.pitch), []).append((on, off, vel, n.instrument))
    spans: dict[str, list[tuple[int, int, int, int]]] = {name: [] for name in chan}
    for (_, pitch), items in by_key.items():
        items.sort(key=lambda x: (x[0], -x[1], -x[2], x[3]))
        merged: list[list] = []
        for on, off, vel, inst in items:
            if merged and on == merged[-1][0]:  # same key struck twice on one tick: one note, the longer
                merged[-1][1] = max(merged[-1][1], off)
                continue
            if merged and on < merged[-1][1]:
                merged[-1][1] = on  # end the earlier note where the new one strikes
            merged.append([on, off, vel, inst])
        for on, off, vel, inst in merged:
            spans[inst].append((on, off, pitch, vel))
    return spans


def _track(events: list[tuple[int, int, int, mido.Message | mido.MetaMessage]], end_tick: int,
           head: list) -> mido.MidiTrack:
    """Delta-timed track: head messages at tick 0, then events sorted (tick, offs before ons, pitch)."""
    track = mido.MidiTrack(head)
    now = 0
    for tick, _order, _pitch, msg in sorted(events, key=lambda e: e[:3]):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return track


def build_midi(notes: Sequence[Note], tempo_map: Sequence[TempoPoint],
               channel_map: dict[str, Instrument], duration: float) -> mido.MidiFile:
    """The Type-1 file as a mido object (write_midi saves it)."""
    if not (math.isfinite(duration) and duration >= 0):
        raise MidiFileError(f"duration must be a finite number of seconds >= 0, got {duration}")
    segs = _segments(tempo_map)
    secs = [s.sec for s in segs]
    end_tick = max(0, _to_tick(segs, secs, duration))
    chan = resolve_channels(channel_map, notes)
    spans = note_spans(notes, chan, lambda t: _to_tick(segs, secs, t), end_tick)

    mid = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    conductor = [(s.tick, 0, 0, mido.MetaMessage("set_tempo", tempo=s.usec_per_beat)) for s in segs[1:]
                 if s.tick < end_tick]  # tempo planned past the end would lengthen the file
    mid.tracks.append(_track(conductor, end_tick, [
        mido.MetaMessage("track_name", name=CONDUCTOR_NAME, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=segs[0].usec_per_beat, time=0),
    ]))
    for name, inst in chan.items():
        c, prog, vol = inst.channel - 1, inst.program, inst.volume
        # MIDI text is latin-1 in mido: a config key outside it must not fail the whole file
        label = name.encode("latin-1", "replace").decode("latin-1")
        head = [mido.MetaMessage("track_name", name=label, time=0),
                mido.Message("program_change", channel=c, program=prog, time=0)]
        if vol is not None:
            head.append(mido.Message("control_change", channel=c, control=7, value=max(0, min(127, vol)), time=0))
        events = []
        for on, off, pitch, vel in spans[name]:
            events.append((on, 1, pitch, mido.Message("note_on", channel=c, note=pitch, velocity=vel)))
            events.append((off, 0, pitch, mido.Message("note_off", channel=c, note=pitch, velocity=0)))
        mid.tracks.append(_track(events, end_tick, head))
    return mid


def write_midi(path: str | Path, notes: Sequence[Note], tempo_map: Sequence[TempoPoint],
               channel_map: dict[str, Instrument], duration: float) -> None:
    """Write `path` atomically: a half-written file never carries the final name.

    channel_map: instrument -> Instrument (channel 1..16, GM program, CC7 volume); drums on 10.
    """
    mid = build_midi(notes, tempo_map, channel_map, duration)
    _atomic_save(Path(path), mid.save)


def _atomic_save(path: Path, save) -> None:
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            save(file=f)
    except OSError as e:
        raise MidiFileError(f"cannot write {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------------
# Reading (tests, evaluation)


def read_tempo_segments(mid: mido.MidiFile) -> list[_Segment]:
    """Tempo events of every track, as the reader's (tick, second, tempo) segments."""
    changes: dict[int, int] = {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes[tick] = msg.tempo
    if 0 not in changes:
        changes[0] = 500000
    segs: list[_Segment] = []
    for tick in sorted(changes):
        if segs:
            prev = segs[-1]
            sec = prev.sec + (tick - prev.tick) * prev.usec_per_beat / 1e6 / mid.ticks_per_beat
        else:
            sec = 0.0
        segs.append(_Segment(tick, sec, changes[tick]))
    return segs


def read_midi_notes(path: str | Path, channel_map: dict[str, Instrument] | None = None) -> list[Note]:
    """Notes of a MIDI file in media seconds; instrument from the track name, else from the channel.

    A note-on without its note-off is ended at the file's last tick (and counted by `stuck_notes`).
    """
    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise MidiFileError(f"{path} is not a readable MIDI file ({e.__class__.__name__})") from None
    notes, _stuck, _end = _parse(mid, channel_map)
    return notes


def stuck_notes(path: str | Path) -> int:
    """How many note-ons in the file have no note-off (0 for files write_midi made)."""
    _notes, stuck, _end = _parse(mido.MidiFile(str(path)), None)
    return stuck


def _parse(mid: mido.MidiFile, channel_map) -> tuple[list[Note], int, int]:
    segs = read_tempo_segments(mid)
    seg_ticks = [s.tick for s in segs]

    def sec(tick: int) -> float:
        s = segs[max(0, bisect.bisect_right(seg_ticks, tick) - 1)]
        return s.sec + (tick - s.tick) * s.usec_per_beat / 1e6 / mid.ticks_per_beat

    by_channel = {Instrument.of(v).channel: k for k, v in (channel_map or {}).items()}
    notes: list[Note] = []
    stuck, last_tick = 0, 0
    for track in mid.tracks:
        name, tick = "", 0
        sounding: dict[tuple[int, int], list[tuple[int, int]]] = {}
        track_notes: list[tuple[int, int, int, int, int]] = []  # on, off, pitch, vel, channel
        for msg in track:
            tick += msg.time
            if msg.type == "track_name" and not name:
                name = msg.name.strip()
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault((msg.channel, msg.note), []).append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                started = sounding.get((msg.channel, msg.note))
                if started:
                    on, vel = started.pop(0)
                    track_notes.append((on, tick, msg.note, vel, msg.channel))
        last_tick = max(last_tick, tick)
        for (chn, pitch), started in sounding.items():
            for on, vel in started:
                stuck += 1
                track_notes.append((on, tick, pitch, vel, chn))
        # a track playing several channels (Type 0, or a merged part) is told apart by channel
        named = name if len({n[4] for n in track_notes}) <= 1 else ""
        for on, off, pitch, vel, chn in track_notes:
            inst = _instrument(named, chn + 1, by_channel)
            notes.append(Note(sec(on), sec(off), pitch, vel, inst))
    return sorted(notes), stuck, last_tick


def _instrument(track_name: str, channel: int, by_channel: dict[int, str]) -> str:
    if track_name and track_name != CONDUCTOR_NAME:
        return track_name
    if channel in by_channel:
        return by_channel[channel]
    return "drums" if channel == DRUM_CHANNEL else f"channel{channel}"


def midi_length(path: str | Path) -> float:
    """Seconds from the start to the last end-of-track, through the file's tempo map."""
    mid = mido.MidiFile(str(path))
    segs = read_tempo_segments(mid)
    _notes, _stuck, end = _parse(mid, None)
    s = segs[max(0, bisect.bisect_right([x.tick for x in segs], end) - 1)]
    return s.sec + (end - s.tick) * s.usec_per_beat / 1e6 / mid.ticks_per_beat


def write_sent(path: str | Path, log: Sequence[tuple[float, bytes]], wall0: float) -> Path:
    """A MIDI file of what a live run actually sent (channel messages), at the real send times measured
    from wall0: 120 bpm, so one second is 960 ticks."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    last = 0
    for wall, raw in sorted(log, key=lambda e: e[0]):
        if raw[0] >= Status.SYSTEM:
            continue  # clock and transport are not file events
        try:
            msg = mido.Message.from_bytes(list(raw))
        except (ValueError, TypeError):
            continue
        tick = max(last, int(round((wall - wall0) * 960)))
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    path = Path(path)
    with replacing(path) as tmp:
        mid.save(str(tmp))
    return path
