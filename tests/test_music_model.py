"""Music transformer: KV cache equals full recomputation, the sliding window runs past the context,
conditions matter, missing conditions use their learned vectors."""

import math

import torch

from cuecast.models.music import model as M
from cuecast.models.music import tokens as T


def tiny(context=32, seed=0):
    torch.manual_seed(seed)
    m = M.MusicTransformer(M.ModelConfig(n_layer=2, d_model=64, n_head=4, context=context, dropout=0.0))
    with torch.no_grad():  # the per-block condition layers start at zero: give them weights, as training does
        for lin in m.cond_layers:
            lin.weight.normal_(0.0, 0.05)
            lin.bias.normal_(0.0, 0.05)
        m.scale_prior.normal_(0.0, 1.0)  # and the scale prior (zero at start too)
    return m.eval()


def random_seq(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    toks = torch.randint(4, T.VOCAB_SIZE, (n,), generator=g).tolist()
    conds = [(float(v), float(a), float(o) if i % 5 else math.nan)
             for i, (v, a, o) in enumerate(torch.rand(n, 3, generator=g).mul(torch.tensor([2, 2, 8])).sub(torch.tensor([1, 1, 0])).tolist())]
    return toks, conds


def test_kv_cache_step_equals_full_recomputation():
    m = tiny(context=32)
    toks, conds = random_seq(30)
    cache = m.new_cache()
    for i in range(30):
        step_logits = m.step(toks[i], *conds[i], cache)
        full_logits = m.full_step(toks[: i + 1], conds[: i + 1])
        assert torch.allclose(step_logits, full_logits, atol=1e-4), i
    assert len(cache) == 30 and cache.pos == 30


def test_chunked_prefill_equals_steps():
    m = tiny()
    toks, conds = random_seq(20)
    c1, c2 = m.new_cache(), m.new_cache()
    for i in range(20):
        last = m.step(toks[i], *conds[i], c1)
    t = torch.tensor([toks])
    c = torch.tensor([conds])
    with torch.no_grad():
        m(t[:, :12], c[..., 0][:, :12], c[..., 1][:, :12], c[..., 2][:, :12], cache=c2)
        logits, _ = m(t[:, 12:], c[..., 0][:, 12:], c[..., 1][:, 12:], c[..., 2][:, 12:], cache=c2)
    assert torch.allclose(logits[0, -1], last, atol=1e-4)


def test_sliding_window_keeps_going_past_the_context():
    m = tiny(context=16)
    toks, conds = random_seq(80)
    cache = m.new_cache()
    for i in range(80):
        logits = m.step(toks[i], *conds[i], cache)
        assert torch.isfinite(logits).all()
        assert len(cache) == min(i + 1, 16)
    assert cache.pos == 80
    # rotary positions: the window at position 64.. attends as a fresh context would (distances only),
    # so re-feeding the last 16 tokens from scratch gives the logits of a cache whose window starts there
    fresh = m.new_cache()
    for i in range(64, 80):
        ref = m.step(toks[i], *conds[i], fresh)
    windowed = m.new_cache(window=16)
    windowed.pos = 64
    for i in range(64, 80):
        got = m.step(toks[i], *conds[i], windowed)
    assert torch.allclose(ref, got, atol=1e-4)


def test_conditions_change_the_output_and_missing_differs_from_zero():
    m = tiny()
    for p in m.parameters():  # make the condition MLPs matter at random init
        p.data.mul_(3)
    toks = [T.BOS, T.shift_token(3), T.on_token(3, 60)]
    out = {}
    for name, cond in {"lo": (-1.0, -1.0, 0.0), "hi": (1.0, 1.0, 8.0), "missing": (math.nan,) * 3, "zero": (0.0,) * 3}.items():
        out[name] = m.full_step(toks, [cond] * 3)
    assert not torch.allclose(out["lo"], out["hi"], atol=1e-3)
    assert not torch.allclose(out["missing"], out["zero"], atol=1e-3)


def test_save_load_round_trip_and_clear_errors(tmp_path):
    m = tiny()
    p = tmp_path / "w.pt"
    M.save(m, str(p), step=3)
    m2, ck = M.load(str(p))
    toks, conds = random_seq(10)
    assert torch.allclose(m.full_step(toks, conds), m2.full_step(toks, conds))
    assert ck["step"] == 3
    try:
        M.load(str(tmp_path / "none.pt"))
        raise AssertionError("missing weights must raise")
    except FileNotFoundError as e:
        assert "train_music.py" in str(e)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    try:
        M.load(str(tmp_path / "bad.pt"))
        raise AssertionError("broken weights must raise")
    except ValueError as e:
        assert "train_music.py" in str(e)


def test_batched_rows_equal_separate_streams():
    m = tiny()
    toks, conds = random_seq(12)
    both, a, b = m.new_cache(), m.new_cache(), m.new_cache()
    for i in range(12):
        other = (math.nan, conds[i][1], conds[i][2])  # the same stream without valence (guidance baseline)
        rows = m.step_rows(toks[i], (conds[i], other), both)
        la, lb = m.step(toks[i], *conds[i], a), m.step(toks[i], *other, b)
    assert torch.allclose(rows[0], la, atol=1e-5) and torch.allclose(rows[1], lb, atol=1e-5)
    assert not torch.allclose(la, lb, atol=1e-4)


def test_weights_without_the_per_block_condition_layers_load_as_the_same_model(tmp_path):
    m = tiny()
    old = {k: v for k, v in m.state_dict().items() if not k.startswith("cond_layers.")}
    torch.save({"config": m.cfg.to_dict(), "state": old, "vocab_size": T.VOCAB_SIZE}, tmp_path / "old.pt")
    loaded, _ = M.load(str(tmp_path / "old.pt"))
    assert all(not lin.weight.detach().any() for lin in loaded.cond_layers)
    fresh = M.MusicTransformer(m.cfg).eval()  # zero layers == no layers: a fine-tune starts from the old model
    fresh.load_state_dict(loaded.state_dict())
    toks, conds = random_seq(8)
    c1, c2 = loaded.new_cache(), fresh.new_cache()
    for i in range(8):
        assert torch.allclose(loaded.step(toks[i], *conds[i], c1), fresh.step(toks[i], *conds[i], c2))
    del old["tok.weight"]
    torch.save({"config": m.cfg.to_dict(), "state": old, "vocab_size": T.VOCAB_SIZE}, tmp_path / "broken.pt")
    try:
        M.load(str(tmp_path / "broken.pt"))
        raise AssertionError("a checkpoint missing real weights must not load")
    except ValueError as e:
        assert "broken" in str(e)


def test_weights_from_before_key_tokens_load_never_choose_them_and_grow_for_fine_tuning(tmp_path):
    cfg = M.ModelConfig(vocab_size=T.VOCAB_BEFORE_KEYS, n_layer=1, n_head=2, d_model=32, context=16)
    old = M.MusicTransformer(cfg).eval()
    M.save(old, str(tmp_path / "old.pt"))
    model, _ = M.load(str(tmp_path / "old.pt"))
    logits = model.step(T.BOS, 0.5, 0.0, math.nan, model.new_cache())
    assert logits.shape == (T.VOCAB_SIZE,) and torch.isinf(logits[T.KEY0:]).all()
    assert torch.isfinite(logits[:T.KEY0]).all()
    grown = M.grow_vocab(model).eval()
    x = torch.tensor([[T.BOS, T.BAR, 40]])
    c = torch.zeros(1, 3)
    a, _ = model(x, c, c, c)
    b, _ = grown(x, c, c, c)
    assert torch.allclose(a[..., :T.KEY0], b[..., :T.KEY0], atol=1e-5)  # the same model on the old tokens
    assert torch.isfinite(b[..., T.KEY0:]).all()  # and the keys can now be learned


def test_the_key_in_force_outlives_the_window():
    """A section's notes stay in its key after its key token slid out of attention: the scale prior follows the
    last key fed, in the step path and in a prefill, and a new key replaces it."""
    m = tiny(context=8)
    with torch.no_grad():
        m.scale_prior.zero_()
        m.scale_prior[:, 1, 0] = 30.0  # minor keys: the tonic of every pitched instrument, far above the rest
    nan = (math.nan,) * 3
    cache = m.new_cache()
    m.step(T.BOS, *nan, cache)
    m.step(T.key_token(1, 2), *nan, cache)  # D minor
    for _ in range(20):  # far past the 8-token window
        logits = m.step(T.SHIFT0, *nan, cache)
    best = int(torch.argmax(logits))
    assert T.PITCHED_ON[best] and T.TOK_PITCH[best] % 12 == 2
    logits = m.step(T.key_token(0, 7), *nan, cache)  # G major: no bias (only minor tonics were set)
    assert not T.PITCHED_ON[int(torch.argmax(logits))] or T.TOK_PITCH[int(torch.argmax(logits))] % 12 != 2
    prefill = m.new_cache()
    with torch.no_grad():
        toks = torch.tensor([[T.BOS, T.key_token(1, 9)] + [T.SHIFT0] * 20])
        nans = torch.full(toks.shape, math.nan)
        m(toks, nans, nans, nans, cache=prefill)
    assert prefill.key == T.key_token(1, 9) - T.KEY0
    best = int(torch.argmax(m.step(T.SHIFT0, *nan, prefill)))
    assert T.PITCHED_ON[best] and T.TOK_PITCH[best] % 12 == 9
