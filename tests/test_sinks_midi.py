"""MIDI file sink: round trip through a tempo map, determinism, channels, no stuck notes, duration, cut_at."""

from __future__ import annotations

import random

import mido
import pytest

from cuecast.streams.midi_file import (MidiFileError, MidiFileSink, midi_length, read_midi_notes, stuck_notes,
                                       write_midi)
from cuecast.types import Note

CHANNELS = {"drums": (10, 0), "bass": (2, 33), "chords": (3, 0), "melody": (4, 73), "pad": (5, 48)}
TEMPO = [(0.0, 100.0, 0.0), (3.3, 137.5, 5.5), (7.01, 61.0, 14.9), (9.5, 203.7, 17.4), (12.345, 88.8, 29.0)]


def random_notes(n: int = 400, seconds: float = 15.0, seed: int = 1) -> list[Note]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        inst = rng.choice(list(CHANNELS))
        start = round(rng.uniform(0, seconds - 0.5), 6)
        pitch = rng.choice([36, 38, 42, 46]) if inst == "drums" else rng.randint(30, 96)
        out.append(Note(start, start + rng.uniform(0.05, 2.0), pitch, rng.randint(20, 127), inst))
    return out


def non_overlapping(notes: list[Note]) -> list[Note]:
    """Keep only notes that never overlap another on the same channel and pitch (they round-trip unchanged)."""
    keep, last_end = [], {}
    for n in sorted(notes):
        key = (CHANNELS[n.instrument][0], n.pitch)
        if n.start >= last_end.get(key, -1.0) + 0.01:
            keep.append(n)
            last_end[key] = n.end
    return keep


def test_round_trip_within_1ms_through_tempo_changes(tmp_path):
    notes = [n for n in non_overlapping(random_notes()) if n.end < 15.0]
    path = tmp_path / "a.mid"
    write_midi(path, notes, TEMPO, CHANNELS, 15.0)
    back = read_midi_notes(path)
    assert len(back) == len(notes)
    key = lambda n: (n.instrument, n.pitch, round(n.start, 2))
    for a, b in zip(sorted(notes, key=key), sorted(back, key=key)):
        assert (a.instrument, a.pitch, a.velocity) == (b.instrument, b.pitch, b.velocity)
        assert abs(a.start - b.start) < 1e-3 and abs(a.end - b.end) < 1e-3
    # The tempo events are really there: the file is not just one tempo with seconds baked in.
    tempos = [m.tempo for m in mido.MidiFile(str(path)).tracks[0] if m.type == "set_tempo"]
    assert [round(60e6 / t, 1) for t in tempos] == [100.0, 137.5, 61.0, 203.7, 88.8]


def test_beats_follow_the_tempo_map(tmp_path):
    """A note on beat 8 at 120 bpm after a change from 60 bpm sits on tick 8 * PPQ."""
    path = tmp_path / "b.mid"
    tempo = [(0.0, 60.0, 0.0), (2.0, 120.0, 2.0)]
    write_midi(path, [Note(5.0, 5.5, 60, 90, "melody")], tempo, CHANNELS, 6.0)
    mid = mido.MidiFile(str(path))
    track = next(t for t in mid.tracks if t.name == "melody")
    tick, on = 0, None
    for m in track:
        tick += m.time
        if m.type == "note_on" and on is None:
            on = tick
    assert on == 8 * mid.ticks_per_beat


def test_same_inputs_same_bytes(tmp_path):
    notes = random_notes(seed=3)
    write_midi(tmp_path / "1.mid", notes, TEMPO, CHANNELS, 15.0)
    shuffled = notes[:]
    random.Random(9).shuffle(shuffled)
    write_midi(tmp_path / "2.mid", shuffled, TEMPO, CHANNELS, 15.0)
    assert (tmp_path / "1.mid").read_bytes() == (tmp_path / "2.mid").read_bytes()
    write_midi(tmp_path / "3.mid", notes[:-1], TEMPO, CHANNELS, 15.0)
    assert (tmp_path / "1.mid").read_bytes() != (tmp_path / "3.mid").read_bytes()


def test_tracks_channels_programs_and_drums_on_10(tmp_path):
    path = tmp_path / "c.mid"
    write_midi(path, random_notes(seed=4), TEMPO, CHANNELS, 15.0)
    mid = mido.MidiFile(str(path))
    assert mid.type == 1 and len(mid.tracks) == 1 + len(CHANNELS)
    for track in mid.tracks[1:]:
        ch, prog = CHANNELS[track.name]
        programs = [(m.channel, m.program) for m in track if m.type == "program_change"]
        assert programs == [(ch - 1, prog)]
        assert {m.channel for m in track if m.type.startswith("note")} == {ch - 1}
    drums = next(t for t in mid.tracks if t.name == "drums")
    assert all(m.channel == 9 for m in drums if m.type.startswith("note"))


def test_no_stuck_notes_with_overlapping_same_pitch(tmp_path):
    notes = [Note(0.0, 2.0, 60, 80, "chords"), Note(0.5, 1.0, 60, 90, "chords"),  # re-strike inside
             Note(0.5, 3.0, 60, 70, "chords"), Note(1.0, 1.0, 62, 70, "chords"),  # same tick, zero length
             Note(1.2, 1.8, 64, 70, "melody"), Note(1.2, 1.6, 64, 99, "melody"),  # same start
             Note(4.0, 9.0, 67, 70, "pad"), Note(-0.5, 0.2, 40, 70, "bass")]       # past the end, before 0
    # bass and chords share a channel here: overlap is resolved per channel, across instruments
    chans = dict(CHANNELS, bass=(3, 33))
    notes.append(Note(0.7, 1.5, 60, 60, "bass"))
    path = tmp_path / "d.mid"
    write_midi(path, notes, TEMPO, chans, 5.0)
    assert stuck_notes(path) == 0
    mid = mido.MidiFile(str(path))
    for track in mid.tracks:
        down: dict = {}
        for m in track:
            if m.type == "note_on" and m.velocity:
                assert not down.get((m.channel, m.note)), f"re-struck a sounding note {m}"
                down[(m.channel, m.note)] = True
            elif m.type.startswith("note"):
                down[(m.channel, m.note)] = False
        assert not any(down.values())
    # Across tracks sharing channel 3, pitch 60 never sounds twice at once.
    back = [n for n in read_midi_notes(path) if n.pitch == 60]
    back.sort()
    assert all(a.end <= b.start + 1e-9 for a, b in zip(back, back[1:]))
    assert max(n.end for n in read_midi_notes(path)) <= 5.0 + 1e-3


@pytest.mark.parametrize("duration", [0.0, 1.0, 7.77, 15.0, 31.4159])
def test_duration_is_exact(tmp_path, duration):
    path = tmp_path / "e.mid"
    write_midi(path, random_notes(seed=5, seconds=10.0), TEMPO, CHANNELS, duration)
    assert abs(midi_length(path) - duration) < 1e-3
    assert abs(mido.MidiFile(str(path)).length - duration) < 1e-3  # mido agrees


def test_cut_at_semantics():
    sink = MidiFileSink()
    sink.tempo(0.0, 120.0, 0)
    sink.notes([Note(0.0, 1.0, 60, 80, "chords"), Note(0.5, 3.0, 64, 80, "pad"), Note(2.0, 2.5, 67, 80, "melody"),
                Note(1.5, 1.6, 36, 80, "drums")])
    sink.tempo(2.5, 90.0, 5)
    original = sink.notes[1]
    sink.cut_at(1.5)
    assert [(n.start, n.end, n.pitch) for n in sink.notes] == [(0.0, 1.0, 60), (0.5, 1.5, 64)]
    assert original.end == 3.0  # the caller's Note objects are not modified
    assert sink.tempo_map == [(0.0, 120.0, 0.0)]
    sink.notes([Note(1.5, 2.0, 62, 80, "chords")])
    sink.tempo(1.5, 100.0, 3)
    assert [n.pitch for n in sink.notes] == [60, 64, 62]
    assert sink.tempo_map == [(0.0, 120.0, 0.0), (1.5, 100.0, 3.0)]
    sink.close()
    sink.close()  # safe twice


def test_tempo_call_replaces_later_planned_changes():
    sink = MidiFileSink()
    for t, bpm in [(0.0, 100), (2.0, 110), (4.0, 120)]:
        sink.tempo(t, bpm, 0)
    sink.tempo(3.0, 90, 0)
    assert [e[0] for e in sink.tempo_map] == [0.0, 2.0, 3.0]


def test_sink_output_writes(tmp_path):
    sink = MidiFileSink()
    sink.tempo(0.0, 96.0, 0)
    sink.notes(random_notes(50, 8.0, seed=7))
    write_midi(tmp_path / "s.mid", sink.notes, sink.tempo_map, CHANNELS, 8.0)
    assert len(read_midi_notes(tmp_path / "s.mid")) > 0


def test_unwritable_path_is_a_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(MidiFileError, match="cannot write"):
        write_midi(tmp_path / "missing" / "x.mid", [], [], CHANNELS, 1.0)
    with pytest.raises(MidiFileError, match="channel"):
        write_midi(tmp_path / "y.mid", [], [], {"bass": (17, 0)}, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_instrument_names_outside_latin1_do_not_break_the_file(tmp_path):
    path = tmp_path / "u.mid"
    write_midi(path, [Note(0, 1, 60, 90, "鼓"), Note(0, 1, 62, 90, "guitarra_ñ")], [],
               {"鼓": (10, 0), "guitarra_ñ": (6, 24)}, 1.0)
    assert [n.instrument for n in read_midi_notes(path)] == ["?", "guitarra_ñ"]


def test_reader_names_notes_by_channel_in_a_type0_file(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="song"),
                            mido.Message("note_on", channel=9, note=36, velocity=90, time=0),
                            mido.Message("note_on", channel=1, note=40, velocity=90, time=0),
                            mido.Message("note_off", channel=9, note=36, time=480),
                            mido.Message("note_off", channel=1, note=40, time=0)])
    mid.tracks.append(track)
    mid.save(str(tmp_path / "t0.mid"))
    notes = read_midi_notes(tmp_path / "t0.mid", {"bass": (2, 33)})
    assert [(n.instrument, n.pitch, n.end) for n in notes] == [("drums", 36, 0.5), ("bass", 40, 0.5)]
