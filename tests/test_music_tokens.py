"""Event vocabulary: MIDI -> tokens -> MIDI round trip, beat-line splitting, CHORD targets, sampling guards."""

import math

import mido
import torch

from cuecast.models.music import corpus as C
from cuecast.models.music import tokens as T
from cuecast.models.music.sample import Guard, _nucleus_from_top, _nucleus_sorted, sample


def write_midi(path, tempo_bpm=100, tpb=480):
    """Drums, bass, piano chord (held 2 beats), melody with two velocities; GM programs pick the instruments."""
    mid = mido.MidiFile(ticks_per_beat=tpb)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4)])
    mid.tracks.append(meta)

    def track(ch, program, notes):  # notes: (start beat, end beat, pitch, velocity)
        ev = []
        for s, e, p, v in notes:
            ev.append((int(s * tpb), 1, p, v))
            ev.append((int(e * tpb), 0, p, 0))
        ev.sort(key=lambda x: (x[0], x[1]))
        tr = mido.MidiTrack([mido.Message("program_change", channel=ch, program=program, time=0)])
        now = 0
        for t, on, p, v in ev:
            tr.append(mido.Message("note_on" if on else "note_off", channel=ch, note=p, velocity=v, time=t - now))
            now = t
        mid.tracks.append(tr)

    piano = [(0, 2, 60, 80), (0, 2, 64, 80), (0, 2, 67, 80), (4, 5, 62, 80), (4, 5, 65, 80), (4, 5, 69, 80)]
    melody = [(0.5, 1.0, 72, 100), (1.0, 1 + 1 / 3, 74, 40), (1 + 1 / 3, 3.75, 76, 40), (6, 7.5, 79, 100)]
    track(0, 0, piano)
    track(1, 33, [(0, 4, 36, 90), (4, 8, 41, 90)])
    track(2, 73, melody)  # flute -> guitar (the melody voice)
    track(9, 0, [(k * 0.5, k * 0.5 + 0.1, 36 if k % 2 == 0 else 38, 100) for k in range(16)])
    mid.save(path)
    return piano, melody


def test_midi_token_round_trip(tmp_path):
    path = tmp_path / "t.mid"
    piano, melody = write_midi(path)
    piece = C.read_midi(path)
    toks, ticks = T.encode(piece.notes, piece.bars)
    back = T.to_notes(toks)
    pitched = sorted((round(n.start, 4), round(n.end, 4), n.pitch, n.inst) for n in back if n.inst != 0)
    want = sorted([(round(s, 4), round(e, 4), p, 3) for s, e, p, _ in piano]
                  + [(round(s, 4), round(e, 4), p, 2) for s, e, p, _ in melody]
                  + [(0.0, 4.0, 36, 1), (4.0, 8.0, 41, 1)])
    assert pitched == want
    drums = [n for n in back if n.inst == 0]
    assert [round(n.start, 3) for n in drums] == [k * 0.5 for k in range(16)]
    # velocities survive to their level (8 levels)
    assert {T.velocity_level(n.velocity) for n in back if n.inst == 2} == {T.velocity_level(100), T.velocity_level(40)}
    assert all(b >= a for a, b in zip(ticks, ticks[1:]))


def test_time_shifts_stop_at_every_beat_and_bars_and_chords_are_marked(tmp_path):
    path = tmp_path / "t.mid"
    write_midi(path)
    piece = C.read_midi(path)
    toks, ticks = T.encode(piece.notes, piece.bars, chord_min_beats=2.0)
    clock = 0
    for tok in toks:
        kind, k, _ = T.decode(tok)
        if kind == "shift":
            assert clock // T.TICKS_PER_BEAT == (clock + k - 1) // T.TICKS_PER_BEAT  # never crosses a beat line
            clock += k
    chord_at = [ticks[i] for i, t in enumerate(toks) if t == T.CHORD]
    assert chord_at == [0]  # the C major triad held 2 beats; the 1-beat D minor is not a boundary target
    assert [ticks[i] for i, t in enumerate(toks) if t == T.BAR] == [0, 48]  # bar lines up to the end of the piece (beat 8)
    # the CHORD token comes right before its notes, after the bar line
    i = toks.index(T.CHORD)
    assert toks[i - 1] == T.BAR and T.KIND[toks[i + 1]] in (2, 3)


def test_boundary_offsets_count_down_to_the_chord():
    notes = [T.BeatNote(4, 6, p, 80, 3) for p in (60, 64, 67)] + [T.BeatNote(0, 1, 72, 80, 2)]
    piece = C.Piece("x", "test", notes, [0, 4], [(0.0, 120.0)])
    tk = C.tokenize_piece(piece)
    toks, off, sec = tk["tokens"], tk["offset"], tk["sec"]
    ci = list(toks).index(T.CHORD)
    assert off[ci - 1] == 0.0  # the token just before CHORD is at the chord's time
    assert abs(off[0] - 2.0) < 1e-6  # 4 beats at 120 bpm
    assert all(math.isnan(x) for x in off[ci:])  # no chord after it
    assert all(a >= b for a, b in zip(off[:ci], off[1:ci]))


def test_guard_bounds_polyphony_and_closes_every_note():
    g = Guard(max_polyphony=3, max_hold_ticks=24)
    gen = torch.Generator().manual_seed(0)
    logits = torch.zeros(T.VOCAB_SIZE)
    logits[T.ON0:T.ON0 + T.N_PITCH] = 8.0  # a model that only wants to open bass notes
    opened = 0
    for _ in range(400):
        forced = g.forced()
        tok = forced if forced is not None else sample(logits, g.mask(), 1.3, 0.9, gen)
        kind = T.KIND[tok]
        assert kind != 4 or (tok - T.N_PITCH) in g.open  # offs only for sounding notes
        assert kind != 3 or tok not in g.open  # no double strike
        opened += kind == 3
        g.update(tok)
        assert sum(1 for o in g.open if T.TOK_INST[o] > 0) <= 3
        assert all(g.tick - s <= 24 for s in g.open.values())
    assert opened > 10
    for off in g.close_all():
        g.update(off)
    assert not g.open


def test_guard_stops_runaway_events_without_time():
    g = Guard()
    gen = torch.Generator().manual_seed(1)
    logits = torch.full((T.VOCAB_SIZE,), -20.0)
    logits[T.DRUM0 + 15] = 10.0  # the same drum hit, forever, at one tick
    run, hits = 0, []
    for _ in range(300):
        tok = sample(logits, g.mask(), 1.0, 1.0, gen)
        g.update(tok)
        run = 0 if T.KIND[tok] == 1 else run + (T.KIND[tok] in (2, 3) or tok == T.CHORD)
        assert run <= g.max_events_per_tick
        if tok == T.DRUM0 + 15:
            hits.append(g.tick)
        assert sum(1 for t in hits if g.tick - t < T.TICKS_PER_BEAT) <= g.max_repeats_per_beat
    assert g.tick > 0 and len(hits) >= 4


def test_guard_keeps_the_meaning_of_a_chord_token():
    g = Guard()
    g.update(T.shift_token(3))
    g.update(T.CHORD)
    assert g.mask()[T.SHIFT0:T.VEL0].all()  # time waits for the chord's notes
    for p in (60, 72, 64):  # C, C (same pitch class), E: still two pitch classes
        g.update(T.on_token(3, p))
        assert g.mask()[T.SHIFT0:T.VEL0].all()
    g.update(T.on_token(1, 43))  # G in the bass: the third pitch class
    assert not g.mask()[T.SHIFT0]
    g.update(T.shift_token(12))
    m = g.mask()
    assert m[T.off_token(3, 60)] and m[T.off_token(1, 43)]  # held about two beats, as the data's chords
    g.update(T.shift_token(12))
    assert not g.mask()[T.off_token(3, 60)]


def test_a_key_token_comes_once_and_never_between_a_level_or_chord_and_its_notes():
    g = Guard()
    assert not g.mask()[T.key_token(0, 0)]
    g.update(T.key_token(0, 0))
    assert g.mask()[T.KEY0:].all()
    g.update(T.vel_token(5))
    assert g.mask()[T.KEY0:].all()
    g.update(T.on_token(2, 60))
    assert not g.mask()[T.KEY0:].any()
    g.update(T.CHORD)
    assert g.mask()[T.KEY0:].all()
    assert T.decode(T.key_token(1, 9)) == ("key", 1, 9) and T.KIND[T.key_token(1, 9)] == T.Kind.KEY


def test_nucleus_shortcut_draws_the_token_the_full_sort_draws():
    """The top-k shortcut of top-p sampling is the same draw: same token, same generator state after, on
    peaked and flat distributions, with ties, masks and several top-p; where it cannot be sure it declines."""
    taken, usual, usual_taken = 0, 0, 0  # usual: the sampler's own setting (top-p 0.6), a peaked distribution as a
    # trained model's (never declined in the generator), no ties
    for trial in range(3000):
        g = torch.Generator().manual_seed(trial)
        logits = torch.randn(T.VOCAB_SIZE, generator=g) * (0.5 + trial % 6)
        if trial % 7 == 0:
            logits[:40] = logits[0]  # ties among the most likely tokens
        logits[torch.rand(T.VOCAB_SIZE, generator=g) < 0.3] = -math.inf
        probs = torch.softmax(logits, -1)
        top_p = (0.6, 0.7, 0.9, 0.97, 1.0)[trial % 5]
        fast, full = torch.Generator().manual_seed(trial), torch.Generator().manual_seed(trial)
        tok = _nucleus_from_top(probs, top_p, fast)
        is_usual = top_p == 0.6 and trial % 7 != 0 and trial % 6 >= 2
        usual += is_usual
        if tok is None:
            continue
        taken += 1
        usual_taken += is_usual
        assert tok == _nucleus_sorted(probs, top_p, full), trial
        assert torch.equal(fast.get_state(), full.get_state())
    assert taken > 1000 and usual_taken > 0.9 * usual
