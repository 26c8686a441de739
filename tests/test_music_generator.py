"""The transformer backend on a tiny random-init model (the weights are not the point here), and the
shipped weights when present."""

import math

import pytest
import torch

from cuecast.models.music import model as M
from cuecast.models.music import tokens as T
from cuecast.models.music.config import GeneratorConfig
from cuecast.models.music.transformer import DEFAULT_WEIGHTS, TransformerGenerator
from cuecast.types import INSTRUMENTS, StepPlan


class Gen(TransformerGenerator):
    events_per_tick = 3  # a random-init model emits events forever; let time move fast for quick tests


def tiny_model():
    torch.manual_seed(0)
    return M.MusicTransformer(M.ModelConfig(n_layer=2, d_model=48, n_head=4, context=48, dropout=0.0)).eval()


def plans(n_beats, bpm=120.0, cuts=(), valence=0.3, arousal=0.2):
    """One plan per beat, split at cuts between beats, as the conductor does."""
    bs = 60.0 / bpm
    out = []
    for b in range(n_beats):
        t0, t1 = b * bs, (b + 1) * bs
        inner = [c for c in cuts if t0 < c < t1]
        edges = [t0] + inner + [t1]
        for i in range(len(edges) - 1):
            nb = next((c for c in cuts if c >= edges[i]), None)
            out.append(StepPlan(edges[i], edges[i + 1], bpm, b, b % 4, 4, valence, arousal, next_boundary=nb,
                                at_boundary=any(abs(c - edges[i]) < 1e-9 for c in cuts), on_grid=i == 0))
    return out


def run(gen, ps):
    notes = []
    for p in ps:
        out = gen.step(p)
        assert all(p.t0 - 1e-6 <= n.start < p.t1 for n in out)
        notes += out
    return notes


def test_steps_give_valid_closed_notes_in_their_window():
    gen = Gen(GeneratorConfig(backend="transformer", max_polyphony=6), model=tiny_model())
    notes = run(gen, plans(12, cuts=(3.3,)))
    assert notes and gen.tokens_generated > 24
    for n in notes:
        assert n.end > n.start and 0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.instrument in INSTRUMENTS
        assert n.end - n.start <= 4 * 0.5 + 0.5 * 0.5 / 12  # max_hold_beats at 120 bpm (+ half a tick of snapping to a cut)
    # bounded polyphony: pitched notes sounding at any onset
    pitched = [n for n in notes if n.instrument != "drums"]
    for n in pitched:
        assert sum(1 for m in pitched if m.start <= n.start < m.end) <= 6


def test_deterministic_for_a_seed_and_different_across_seeds():
    model = tiny_model()
    a = run(Gen(GeneratorConfig(backend="transformer", seed=5), model=model), plans(6))
    torch.manual_seed(123)  # the global RNG must not matter
    b = run(Gen(GeneratorConfig(backend="transformer", seed=5), model=model), plans(6))
    c = run(Gen(GeneratorConfig(backend="transformer", seed=6), model=model), plans(6))
    assert a == b and a != c
    gen = Gen(GeneratorConfig(backend="transformer", seed=5), model=model)
    run(gen, plans(3))
    gen.reset(5)
    assert run(gen, plans(6)) == a


def test_rewind_keeps_the_past_and_regenerates_the_future():
    model = tiny_model()
    gen = Gen(GeneratorConfig(backend="transformer", seed=2), model=model)
    ps = plans(10)
    first = run(gen, ps)
    gen.rewind(3.0)
    again = run(gen, [p for p in ps if p.t0 >= 3.0])
    assert again and all(n.start >= 3.0 for n in again)
    # the notes before the rewind point are not re-emitted, and the tempo grid is kept
    assert all(abs(n.start * 24 - round(n.start * 24)) < 1e-6 for n in again)
    assert [n for n in first if n.start < 3.0]


def test_chord_bias_puts_a_chord_token_at_the_boundary():
    model = tiny_model()
    gen = Gen(GeneratorConfig(backend="transformer", seed=0), model=model)
    gen.chord_bias = 30.0  # a random model only follows the conductor's help
    run(gen, plans(8, cuts=(1.75,)))
    chord_times = [t for tok, t, *_ in gen.log if tok == T.CHORD]
    assert chord_times and any(abs(t - 1.75) < 1e-6 for t in chord_times)


def test_a_known_cut_is_prepared_by_a_breath_and_struck_loud_with_crash_and_kick():
    # the conductor's help alone (a random model follows it): nothing new in the last sixteenth before the cut,
    # then on it a loud level, a crash, a kick and a chord
    gen = TransformerGenerator(GeneratorConfig(backend="transformer", seed=0, boundary_steer=10.0, chord_bias=30.0),
                               model=tiny_model())
    # a random model drums on every key; the drummer's limit per beat (the guard's) would otherwise decide
    # whether the kick fits, which is not what this checks
    gen.s.guard.max_drums_per_beat = 32
    cut, beat = 1.75, 0.5
    notes = run(gen, plans(6, cuts=(cut,)))
    assert not [n for n in notes if cut - beat / 4 < n.start < cut - 1e-6]
    hit = [n for n in notes if abs(n.start - cut) < 1e-6]
    drums = {n.pitch for n in hit if n.instrument == "drums"}
    assert drums & {49, 57} and drums & {35, 36}
    assert min(n.velocity for n in hit) >= T.level_velocity(6)
    assert sum(n.instrument != "drums" for n in hit) >= 3


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_music"):
        TransformerGenerator(GeneratorConfig(backend="transformer", weights=str(tmp_path / "no.pt")))


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no shipped weights")
def test_shipped_weights_load_and_play():
    gen = Gen(GeneratorConfig(backend="transformer", seed=0, device="cpu"))
    assert gen.model.n_params() < 10_000_000
    notes = run(gen, plans(8))
    assert notes and not any(math.isnan(n.start) for n in notes)


def test_guidance_runs_two_streams_and_stays_valid():
    model = tiny_model()
    plain = run(Gen(GeneratorConfig(backend="transformer", seed=3), model=model), plans(4))
    guided_gen = Gen(GeneratorConfig(backend="transformer", seed=3, guidance=3.0), model=model)
    guided = run(guided_gen, plans(4))
    assert guided_gen.s.cache.k[0].shape[0] == 2  # conditioned and valence-free streams in one batch
    assert guided and guided != plain
    assert all(n.end > n.start for n in guided)


def test_guidance_with_weights_from_before_key_tokens():
    """Weights from a smaller vocabulary rule the appended tokens out in both streams (-inf): guidance keeps them
    out instead of drawing from NaN."""
    torch.manual_seed(0)
    model = M.MusicTransformer(M.ModelConfig(vocab_size=T.VOCAB_BEFORE_KEYS, n_layer=2, d_model=64, n_head=4,
                                             context=64, dropout=0.0)).eval()
    notes = run(Gen(GeneratorConfig(backend="transformer", seed=3, guidance=3.0), model=model), plans(4))
    assert all(n.end > n.start and not math.isnan(n.start) for n in notes)


def test_token_log_is_kept_only_from_the_oldest_snapshot(monkeypatch):
    """The log exists for rewind, which replays from a snapshot: what is older goes (in batches of LOG_SLACK)."""
    from cuecast.models.music import transformer

    model = tiny_model()
    ps = plans(36, cuts=(7.3,))
    monkeypatch.setattr(transformer, "LOG_SLACK", 10**9)  # never trimmed
    kept = Gen(GeneratorConfig(backend="transformer", seed=3), model=model)
    a = run(kept, ps)
    monkeypatch.setattr(transformer, "LOG_SLACK", 40)
    gen = Gen(GeneratorConfig(backend="transformer", seed=3), model=model)
    b = run(gen, ps)
    assert a == b
    assert kept.snaps[0][1] > 100 and len(kept.log) == kept.tokens_generated
    assert gen.snaps[0][1] <= 40 and len(gen.log) <= 40 + len(kept.log) - kept.snaps[0][1]
    # a rewind into the snapshots replays the same tokens from the trimmed log
    for g in (kept, gen):
        g.rewind(15.0)
    rest = [p for p in ps if p.t0 >= 15.0 - 1e-9]
    assert run(kept, rest) == run(gen, rest)

