"""Training windows whose labels lead the music: joins at a bar, parallel-mode and loudness changes,
labels measured per part, the join marked as a boundary (offsets, swell, accent, crash)."""

import numpy as np
import pytest

from cuecast.models.music import tokens as T
from cuecast.models.music import windows as W

SCALE = (60, 62, 64, 65, 67, 69, 71, 72)


def piece(beats=64, per_beat=1, velocity=80, drums=True):
    """C major: a scale melody, a held triad every bar, kick/snare; 120 bpm."""
    notes = []
    for b in range(beats):
        for k in range(per_beat):
            s = b + k / per_beat
            notes.append(T.BeatNote(s, s + 1 / per_beat, SCALE[(b * per_beat + k) % 8], velocity, 2))
        if drums:
            notes.append(T.BeatNote(b, b + 0.2, 36 if b % 2 == 0 else 38, velocity, 0))
        if b % 4 == 0:
            notes += [T.BeatNote(b, b + 4, p, velocity - 20, 3) for p in (48, 52, 55)]
    toks, ticks = T.encode(notes, bar_beats=list(range(0, beats, 4)))
    toks = np.array(toks)
    return toks, np.array(ticks) / T.TICKS_PER_BEAT * 0.5, np.full(len(toks), np.nan)


@pytest.fixture(scope="module")
def mode_tabs():
    return W.parallel_mode_tables()


def part(toks, sec, off, a, b, flip=False, delta=0):
    return W.Part(toks[a:b], sec[a:b], off[a:b], W.level_before(toks, a), flip, delta)


def test_a_plain_window_is_the_corpus_unchanged(mode_tabs):
    toks, sec, off = piece()
    w = W.build([part(toks, sec, off, 0, 400)], 385, mode_tabs, boundary=False)
    assert np.array_equal(w.tokens, toks[:385])
    assert len(np.unique(w.valence_raw)) == 1 and np.isnan(w.offset).all()


def test_a_minor_part_after_the_join_is_labelled_and_played_minor(mode_tabs):
    toks, sec, off = piece()
    split = int(np.flatnonzero(toks == T.BAR)[8])
    w = W.build([part(toks, sec, off, 0, split), part(toks, sec, off, split, len(toks), flip=True)], 385, mode_tabs, boundary=True)
    notes = T.to_notes(w.tokens)
    before = {n.pitch % 12 for n in notes if n.inst == 2 and n.start < 32}
    after = {n.pitch % 12 for n in notes if n.inst == 2 and n.start >= 32}
    assert 4 in before and 3 in after and 4 not in after  # E in C major, E flat in C minor
    first, last = w.valence_raw[0], w.valence_raw[w.tokens != T.PAD][-1]
    assert first > 0 > last
    # the join is a boundary: offsets count down to it (at most 8 s), a crash lands on it, louder than before
    assert np.nanmax(w.offset) <= 8.0 and np.nanmin(w.offset) == pytest.approx(0.0)
    crash = [n for n in notes if n.inst == 0 and n.pitch == W.CRASH]
    assert [n.start for n in crash] == [32.0]
    vel = lambda lo, hi: np.mean([n.velocity for n in notes if lo <= n.start < hi])  # noqa: E731
    assert vel(32, 33) > vel(24, 28)  # the accent over the plain bars before
    # every note-off closes a sounding note: nothing from the first part rings into the second
    sounding = set()
    for t in w.tokens:
        kind = T.KIND[t]
        if kind == T.Kind.ON and T.TOK_INST[t] > 0:
            sounding.add(int(t))
        elif kind == T.Kind.OFF:
            assert int(t) - T.N_PITCH in sounding
            sounding.discard(int(t) - T.N_PITCH)


def test_arousal_follows_density_and_loudness(mode_tabs):
    slow, sec_s, off_s = piece(per_beat=1, velocity=60)
    fast, sec_f, off_f = piece(per_beat=4, velocity=60)
    a = lambda toks, sec, off, d=0: W.build([part(toks, sec, off, 0, 400, delta=d)], 385, mode_tabs, False).arousal_raw[0]  # noqa: E731
    assert a(fast, sec_f, off_f) > a(slow, sec_s, off_s)
    assert a(slow, sec_s, off_s, d=2) > a(slow, sec_s, off_s) > a(slow, sec_s, off_s, d=-2)


def test_a_splice_from_another_piece_closes_the_old_notes(mode_tabs):
    a, sa, oa = piece(velocity=60)
    b, sb, ob = piece(per_beat=4, velocity=110, drums=False)
    split = int(np.flatnonzero(a == T.BAR)[4])
    start = int(np.flatnonzero(b == T.BAR)[3])
    w = W.build([part(a, sa, oa, 0, split), part(b, sb, ob, start, len(b))], 385, mode_tabs, boundary=True)
    assert len(w.tokens) == 385
    n_first = int(np.sum(np.isclose(w.arousal_raw, w.arousal_raw[0])))
    assert w.arousal_raw[n_first + 5] > w.arousal_raw[0]  # the denser, louder part is labelled more aroused
    notes = T.to_notes(w.tokens)
    assert all(n.end <= 16.0 + 1e-9 for n in notes if n.start < 16.0 and n.inst > 0)  # closed at the join


def test_a_piece_start_opens_with_bos_bar_and_its_key(mode_tabs):
    toks, sec, off = piece()
    w = W.build([part(toks, sec, off, 0, 400)], 385, mode_tabs, boundary=False, fresh=True)
    assert list(w.tokens[:3]) == [T.BOS, T.BAR, T.key_token(0, 0)]  # C major
    assert np.isnan(w.valence_raw[0]) and w.valence_raw[2] > 0  # BOS has no conditions (as generation feeds it)
    flipped = W.build([part(toks, sec, off, 0, 400, flip=True)], 385, mode_tabs, boundary=False, fresh=True)
    assert flipped.tokens[2] == T.key_token(1, 0) and flipped.valence_raw[2] < 0  # C minor
    assert (T.KIND[w.tokens] == T.Kind.KEY).sum() == 1  # a window in the middle of a piece gets none in front
    assert not (T.KIND[W.build([part(toks, sec, off, 0, 400)], 385, mode_tabs, False).tokens] == T.Kind.KEY).any()


def test_each_later_part_opens_with_its_own_key_after_the_bar(mode_tabs):
    toks, sec, off = piece()
    split = int(np.flatnonzero(toks == T.BAR)[8])
    w = W.build([part(toks, sec, off, 0, split), part(toks, sec, off, split, len(toks), flip=True)], 385, mode_tabs,
                boundary=True)
    keys = np.flatnonzero(T.KIND[w.tokens] == T.Kind.KEY)
    assert len(keys) == 1 and w.tokens[keys[0]] == T.key_token(1, 0)
    assert w.tokens[keys[0] - 1] == T.BAR and w.valence_raw[keys[0]] < 0  # labelled as the minor part it opens
    assert w.tokens[keys[0] + 1:keys[0] + 4].tolist().count(T.on_token(0, W.CRASH)) == 1  # then the accent


def test_transposing_moves_the_key_with_the_notes():
    tabs = W.transpose_tables()
    assert tabs[6 + 3, T.key_token(1, 10)] == T.key_token(1, 1)  # A# minor up 3 = C# minor
    assert tabs[6 - 5, T.key_token(0, 2)] == T.key_token(0, 9)


def test_the_trainer_can_count_key_tokens_more_in_its_loss():
    import sys
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from train_music import key_weighted_nll

    logits = torch.randn(1, 4, T.VOCAB_SIZE, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([[T.BAR, T.key_token(1, 3), T.on_token(2, 60), T.PAD]])
    plain = F.cross_entropy(logits[0, :3], y[0, :3])
    assert key_weighted_nll(logits, y, 1.0) == pytest.approx(float(plain), rel=1e-5)
    nll = F.cross_entropy(logits[0, :3], y[0, :3], reduction="none")
    assert key_weighted_nll(logits, y, 10.0) == pytest.approx(float((nll[0] + 10 * nll[1] + nll[2]) / 12), rel=1e-5)


def test_the_trainer_counts_the_notes_right_after_a_key_token_more():
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from train_music import after_key_weights

    key, note, off, drum = T.key_token(0, 0), T.on_token(2, 60), T.off_token(2, 60), T.on_token(0, 36)
    x = torch.tensor([[note, key, note, off, drum, note, note, note]])
    y = torch.tensor([[key, note, off, drum, note, note, note, T.BAR]])
    w = after_key_weights(x, y, span=4, weight=3.0)
    # before the key: plain; after it only pitched note-ons within the span count more (not offs, drums, BAR)
    assert w.tolist() == [[1.0, 3.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0]]


def test_a_collapsed_valence_path_restarts_as_features_that_vary_with_valence():
    import sys
    from pathlib import Path

    import torch

    from cuecast.models.music import model as M

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from train_music import redraw_condition_path

    mlp = M.CondMLP(1, 16, 64)
    with torch.no_grad():
        mlp.net[0].weight.mul_(0.01)  # collapsed, as the shipped weights' valence path was
        before = mlp.net(torch.zeros(1, 1))
    redraw_condition_path(mlp)
    v = torch.linspace(-1, 1, 9).unsqueeze(1)
    with torch.no_grad():
        out, hidden = mlp.net(v), mlp.net[1](mlp.net[0](v))
    assert torch.allclose(out, before.expand_as(out), atol=1e-6)  # the model's output is unchanged at first
    assert hidden.std(0).mean() > 0.3  # but the features the read-out learns from move with valence
