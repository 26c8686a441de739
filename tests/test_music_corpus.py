"""Corpus builder on a small synthetic MIDI folder (Lakh-like nesting, a broken file, .midi suffix)."""

import json
import sys
from pathlib import Path

import numpy as np

from cuecast.models.music import corpus as C
from cuecast.models.music import tokens as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_corpus  # noqa: E402

from test_music_tokens import write_midi  # noqa: E402


def make_folder(root: Path) -> None:
    for i, sub in enumerate(["A/B/C", "A/D/E", "F/G/H", "F/G/I"]):
        d = root / sub
        d.mkdir(parents=True)
        write_midi(d / (f"song{i}.mid" if i % 2 else f"song{i}.midi"), tempo_bpm=80 + 20 * i)
    (root / "F" / "broken.mid").write_bytes(b"MThd garbage")
    (root / "F" / "notes.txt").write_text("not midi")


def test_build_corpus_on_a_midi_folder(tmp_path):
    src, out = tmp_path / "lmd", tmp_path / "corpus"
    make_folder(src)
    rc = build_corpus.main(["--out", str(out), "--sources", "", "--midi-dir", str(src), "--heldout", "0.3",
                            "--stats-copy", str(tmp_path / "stats_copy.json"), "--max-minutes", "5"])
    assert rc == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["pieces"] == 4 and stats["files"]["broken_mididir"] == 1
    assert stats["pieces_train"] + stats["pieces_heldout"] == 4
    assert set(stats["pieces_with_instrument"]) == {"drums", "bass", "guitar", "piano"}
    assert stats["chord_tokens"] == 4  # one held triad per piece
    assert json.loads((tmp_path / "stats_copy.json").read_text()) == stats
    z = np.load(out / "corpus.npz")
    toks = z["tokens"]
    assert (toks == T.BOS).sum() == 4 and toks.max() < T.VOCAB_SIZE
    assert np.nanmin(z["valence"]) >= -1 and np.nanmax(z["arousal"]) <= 1
    # the split is fixed by seed and name: a second run (from the cache) gives the same corpus
    build_corpus.main(["--out", str(out), "--sources", "", "--midi-dir", str(src), "--heldout", "0.3", "--stats-copy", ""])
    assert np.array_equal(np.load(out / "corpus.npz")["tokens"], toks)


def test_labels_follow_mode_and_density():
    def piece(third, per_beat):
        notes = []
        for b in range(32):
            root = 60 if b % 8 < 4 else 67
            for k in range(per_beat):
                notes.append(T.BeatNote(b + k / per_beat, b + (k + 1) / per_beat, root + (0, third, 7)[k % 3], 80, 3))
        return C.Piece("p", "test", notes, [], [(0.0, 120.0)])

    sec = np.array([4.0, 8.0])
    v_major, a_slow = C.raw_labels(piece(4, 1), sec)
    v_minor, a_fast = C.raw_labels(piece(3, 4), sec)
    assert (v_major > v_minor).all()
    assert (a_fast > a_slow).all()
