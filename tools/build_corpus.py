"""Build the music transformer's training corpus.

Sources (each optional):
  music21   the corpus inside the music21 wheel (folk tunes with chord symbols -> melody + chords + bass,
            chorales, Palestrina, ...);
  debian    MIDI files shipped by Debian packages (mma, openttd-openmsx, simutrans-data, freedink-data,
            planetblupi-music-midi);
  mma       mma's groove library rendered over generated chord progressions (runs the `mma` program);
  --midi-dir any folder of MIDI (recursive, .mid/.midi; the Lakh MIDI layout works as is).

Every parsed source file is cached under OUT/cache/ so that a second run resumes where the first stopped;
--max-minutes caps the parsing time (the rest is skipped, and the statistics say how many).
Writes OUT/corpus.npz (token stream with per-token valence, arousal, boundary offset; BOS between pieces),
OUT/pieces.json and OUT/stats.json (also copied to models/weights/music_corpus_stats.json).

    python tools/build_corpus.py --out data/music --max-minutes 15
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cuecast.models.music import corpus as C
from cuecast.models.music import tokens as T

DEBIAN_PACKAGES = ("mma", "openttd-openmsx", "simutrans-data", "freedink-data", "planetblupi-music-midi")
# music21 folders in the order they are worth parsing time: chord-symbol folk tunes first.
# Big multi-movement scores (beethoven, haydn, ...) parse slowly for little data: they come last.
M21_ORDER = ("bach", "essenFolksong", "oneills1850", "nottingham-dataset", "ryansMammoth", "leadSheet", "airdsAirs",
             "miscFolk", "palestrina", "monteverdi", "trecento", "schumann_robert", "schumann_clara", "mozart",
             "haydn", "beethoven")
MAJOR_PROG = [("", 0), ("m", 2), ("m", 4), ("", 5), ("7", 7), ("m", 9)]
MINOR_PROG = [("m", 0), ("", 3), ("m", 5), ("", 7), ("7", 7), ("", 8), ("", 10)]
NAMES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]


# ---- listing sources --------------------------------------------------------------------------------

def debian_midis() -> list[Path]:
    out = []
    for pkg in DEBIAN_PACKAGES:
        try:
            files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            continue
        out += [Path(f) for f in files if f.lower().endswith((".mid", ".midi")) and Path(f).is_file()]
    return sorted(set(out))


def midi_dir_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())


def music21_paths() -> list[Path]:
    from music21 import corpus

    paths = [Path(p) for p in corpus.getPaths() if Path(p).suffix in (".abc", ".mxl", ".xml", ".krn", ".musicxml")]
    rank = {name: i for i, name in enumerate(M21_ORDER)}

    def key(p: Path):
        folder = p.parts[p.parts.index("corpus") + 1] if "corpus" in p.parts else ""
        return (rank.get(folder, len(M21_ORDER) - 2), str(p))

    by_folder: dict[int, list[Path]] = {}
    for p in sorted(paths, key=key):
        by_folder.setdefault(key(p)[0], []).append(p)
    # the first folders interleaved so a time cap keeps a mix of chorales and folk tunes; the slow rest after
    first = [by_folder.pop(k) for k in sorted(by_folder)[:8]]
    return interleave(first) + [p for k in sorted(by_folder) for p in by_folder[k]]


def groove_names() -> list[str]:
    names = []
    for f in sorted(Path("/usr/share/mma/lib/stdlib").glob("*.mma")):
        for line in f.read_text(errors="ignore").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].lower() == "defgroove":
                names.append(parts[1])
    return names


def write_mma_songs(out: Path, n: int, seed: int) -> list[Path]:
    """n .mma files: a random stdlib groove over a random diatonic progression, key, mode and tempo."""
    rng = random.Random(seed)
    grooves = groove_names()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n if grooves else 0):
        minor = rng.random() < 0.5
        key = rng.randrange(12)
        prog = MINOR_PROG if minor else MAJOR_PROG
        bars = []
        for b in range(rng.choice([8, 12, 16])):
            chords = [prog[0] if b == 0 else rng.choice(prog) for _ in range(rng.choice([1, 1, 2]))]
            names = [NAMES[(key + off) % 12] + q for q, off in chords]
            bars.append(names[0] + " / / /" if len(names) == 1 else f"{names[0]} / {names[1]} /")
        bars.append((NAMES[key] + ("m" if minor else "")) + " / / /")
        path = out / f"song{seed}_{i:04d}.mma"
        path.write_text(f"Tempo {rng.randrange(70, 161)}\nGroove {rng.choice(grooves)}\n" + "\n".join(bars) + "\n")
        files.append(path)
    return files


def interleave(lists: list[list]) -> list:
    """Round-robin over the sources, so that a time cap keeps a mix of them."""
    lists = [list(x) for x in lists]
    out = []
    while any(lists):
        for lst in lists:
            if lst:
                out.append(lst.pop(0))
    return out


# ---- parsing with a cache ---------------------------------------------------------------------------

def cache_path(cache: Path, kind: str, src: Path) -> Path:
    return cache / f"{kind}_{hashlib.sha1(str(src).encode()).hexdigest()[:16]}.npz"


def write_cache(path: Path, data: list[dict] | dict) -> None:
    """Parsed pieces as .npz (arrays, plus the rest as JSON): data, never a pickle that could run code."""
    arrays, meta = {}, []
    for i, piece in enumerate(data if isinstance(data, list) else []):
        row = {}
        for k, v in piece.items():
            if isinstance(v, np.ndarray):
                arrays[f"{i}.{k}"] = v
            else:
                row[k] = v
        meta.append(row)
    head = meta if isinstance(data, list) else data
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.array(json.dumps(head)), **arrays)


def read_cache(path: Path) -> list[dict] | dict:
    with np.load(path, allow_pickle=False) as z:
        head = json.loads(str(z["__meta__"]))
        if not isinstance(head, list):
            return head
        for i, row in enumerate(head):
            prefix = f"{i}."
            row.update({k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)})
        return head


def parse_item(kind: str, src: Path, mma_out: Path) -> list[C.Piece]:
    if kind in ("debian", "mididir"):
        return [C.read_midi(src, kind)]
    if kind == "mma":
        mid = mma_out / (src.stem + ".mid")
        if not mid.exists():
            subprocess.run(["mma", "-f", str(mid), str(src)], capture_output=True, timeout=60, check=False)
        if not mid.exists():
            raise ValueError("mma failed")
        return [C.read_midi(mid, kind)]
    from music21 import corpus, stream

    parsed = corpus.parse(str(src))
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    folder = src.parts[src.parts.index("corpus") + 1] if "corpus" in src.parts else "music21"
    rng = random.Random(str(src))
    out = []
    for j, sc in enumerate(scores):
        try:
            out.append(C.read_music21(sc, f"{src.stem}#{j}", f"music21/{folder}", tempo_bpm=rng.randrange(80, 141)))
        except Exception:  # noqa: BLE001 - one broken tune in an opus must not lose the others
            continue
    return out


class FileTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise FileTimeout("took too long")


def process(items: list[tuple[str, Path]], cache: Path, mma_out: Path, deadline: float,
            chord_min_beats: float, file_timeout: int = 60) -> Counter:
    signal.signal(signal.SIGALRM, _on_alarm)
    counts: Counter = Counter()
    bar = tqdm(items, desc="parse", unit="file", file=sys.stdout, mininterval=5)
    for kind, src in bar:
        cp = cache_path(cache, kind, src)
        if cp.exists():
            counts["cached"] += 1
            continue
        if time.time() > deadline:
            counts[f"skipped_time_cap_{kind}"] += 1
            continue
        try:
            signal.alarm(file_timeout)  # one pathological score must not eat the time cap
            try:
                pieces = parse_item(kind, src, mma_out)
            finally:
                signal.alarm(0)
            data = []
            for pc in pieces:
                tk = C.tokenize_piece(pc, chord_min_beats)
                if len(tk["tokens"]) < 32:
                    continue
                data.append({"name": f"{kind}:{src}:{pc.name}", "source": pc.source, "insts": pc.instruments(),
                             "n_notes": len(pc.notes), **tk})
            write_cache(cp, data)
            counts["parsed"] += 1
        except Exception as e:  # noqa: BLE001 - broken files are counted and skipped, as Lakh needs
            counts[f"broken_{kind}"] += 1
            write_cache(cp, {"error": str(e)[:200]})
    return counts


# ---- assembling -------------------------------------------------------------------------------------

def assemble(items: list[tuple[str, Path]], cache: Path, out: Path, seed: int, heldout: float, counts: Counter,
             valence_scope: str = "piece") -> dict:
    pieces = []
    for kind, src in items:
        cp = cache_path(cache, kind, src)
        if cp.exists():
            data = read_cache(cp)
            if isinstance(data, list):
                pieces.extend(data)
    if not pieces:
        raise SystemExit("build_corpus: no pieces parsed; check the sources")
    for p in pieces:
        p["split"] = C.split_of(p["name"], seed, heldout)
        if valence_scope == "piece":  # EMSYNC labels a whole piece: one valence, its mean key score
            p["val_raw"] = np.full_like(p["val_raw"], float(np.mean(p["val_raw"])))
    train = [p for p in pieces if p["split"] == "train"] or pieces
    vtab = C.quantile_table(np.concatenate([p["val_raw"] for p in train]))
    atab = C.quantile_table(np.concatenate([p["aro_raw"] for p in train]))
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("tokens", "valence", "arousal", "offset", "sec")}
    meta = []
    pos = 0
    for split in ("train", "heldout"):
        for p in (q for q in pieces if q["split"] == split):
            n = len(p["tokens"]) + 1
            arrays["tokens"].append(np.concatenate([[T.BOS], p["tokens"]]).astype(np.int16))
            arrays["valence"].append(np.concatenate([[np.nan], C.to_unit(p["val_raw"], vtab)]))
            arrays["arousal"].append(np.concatenate([[np.nan], C.to_unit(p["aro_raw"], atab)]))
            arrays["offset"].append(np.concatenate([[np.nan], p["offset"]]))
            arrays["sec"].append(np.concatenate([[0.0], p["sec"]]))
            meta.append({"name": p["name"], "source": p["source"], "split": split, "start": pos, "length": n,
                         "insts": p["insts"], "n_notes": p["n_notes"], "seconds": float(p["sec"][-1])})
            pos += n
    cat = {k: np.concatenate(v) for k, v in arrays.items()}
    n_train = sum(m["length"] for m in meta if m["split"] == "train")
    np.savez(out / "corpus.npz", tokens=cat["tokens"], valence=cat["valence"].astype(np.float16),
             arousal=cat["arousal"].astype(np.float16), offset=cat["offset"].astype(np.float16),
             sec=cat["sec"].astype(np.float32), n_train=np.array(n_train), valence_table=vtab, arousal_table=atab)
    (out / "pieces.json").write_text(json.dumps(meta))
    stats = statistics(meta, cat, counts, seed, heldout, vtab, atab)
    stats["valence_scope"] = valence_scope
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def statistics(meta, cat, counts, seed, heldout, vtab, atab) -> dict:
    toks = cat["tokens"]
    kinds = T.KIND[toks.astype(np.int64)]
    insts = Counter(i for m in meta for i in m["insts"])
    by_source = Counter(m["source"].split("/")[0] for m in meta)
    by_source_tokens = Counter()
    for m in meta:
        by_source_tokens[m["source"].split("/")[0]] += m["length"]
    hist = lambda a: np.histogram(a[~np.isnan(a)], bins=10, range=(-1, 1))[0].tolist()  # noqa: E731
    off = cat["offset"]
    return {
        "seed": seed, "heldout_fraction": heldout,
        "pieces": len(meta), "pieces_train": sum(m["split"] == "train" for m in meta),
        "pieces_heldout": sum(m["split"] == "heldout" for m in meta),
        "tokens": int(len(toks)), "tokens_train": int(sum(m["length"] for m in meta if m["split"] == "train")),
        "hours_of_music": round(sum(m["seconds"] for m in meta) / 3600, 2),
        "notes": int(sum(m["n_notes"] for m in meta)),
        "pieces_by_source": dict(by_source), "tokens_by_source": dict(by_source_tokens),
        "pieces_with_instrument": dict(insts),
        "token_kinds": {k: int((kinds == i).sum()) for i, k in enumerate(("special", "shift", "velocity", "note_on", "note_off"))},
        "chord_tokens": int((toks == T.CHORD).sum()), "bar_tokens": int((toks == T.BAR).sum()),
        "valence_hist_-1..1": hist(cat["valence"].astype(np.float32)),
        "arousal_hist_-1..1": hist(cat["arousal"].astype(np.float32)),
        "offset_missing_fraction": round(float(np.isnan(off).mean()), 4),
        "offset_hist_0..8s": np.histogram(off[~np.isnan(off)], bins=8, range=(0, 8))[0].tolist(),
        "valence_raw_quantiles_0_25_50_75_100": [round(float(vtab[i]), 4) for i in (0, 25, 50, 75, 100)],
        "arousal_raw_quantiles_0_25_50_75_100": [round(float(atab[i]), 4) for i in (0, 25, 50, 75, 100)],
        "files": dict(counts),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/music", help="corpus folder (default data/music)")
    ap.add_argument("--sources", default="debian,mma,music21", help="comma list of debian, mma, music21 (default all)")
    ap.add_argument("--midi-dir", action="append", default=[], help="a folder of MIDI files (recursive); repeatable")
    ap.add_argument("--mma-songs", type=int, default=400, help="mma groove renders (default 400)")
    ap.add_argument("--max-files", type=int, default=0, help="cap per source (0: none)")
    ap.add_argument("--max-minutes", type=float, default=15.0, help="stop parsing new files after this long (0: parse nothing, assemble from the cache)")
    ap.add_argument("--file-timeout", type=int, default=60, help="seconds one source file may take (default 60)")
    ap.add_argument("--chord-min-beats", type=float, default=2.0, help="hold of a CHORD target in beats")
    ap.add_argument("--valence-scope", choices=("piece", "window"), default="piece",
                    help="valence label per piece (EMSYNC; default) or per +-8 s window around each token")
    ap.add_argument("--shard", default="", help="I/N: parse only every N-th source file from the I-th (0-based), "
                    "for parallel builders sharing OUT; the corpus is assembled from whatever the cache holds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout", type=float, default=0.05, help="held-out fraction of pieces")
    ap.add_argument("--stats-copy", default="models/weights/music_corpus_stats.json", help="'' to skip")
    a = ap.parse_args(argv)
    out = Path(a.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    sources = {s.strip() for s in a.sources.split(",") if s.strip()}
    cap = (lambda xs: xs[: a.max_files]) if a.max_files else (lambda xs: xs)
    lists: list[list[tuple[str, Path]]] = []
    for d in a.midi_dir:
        if not Path(d).is_dir():
            print(f"build_corpus: --midi-dir {d} is not a folder", file=sys.stderr)
            return 2
        lists.append([("mididir", p) for p in cap(midi_dir_files(Path(d)))])
    if "debian" in sources:
        lists.append([("debian", p) for p in cap(debian_midis())])
    if "mma" in sources and shutil.which("mma"):
        lists.append([("mma", p) for p in cap(write_mma_songs(out / "mma", a.mma_songs, a.seed))])
    if "music21" in sources:
        lists.append([("music21", p) for p in cap(music21_paths())])
    items = interleave(lists)
    todo = items
    if a.shard:
        try:
            i, n = (int(x) for x in a.shard.split("/"))
            assert 0 <= i < n
        except (ValueError, AssertionError):
            ap.error("--shard must look like 0/2")
        todo = items[i::n]
    print(f"build_corpus: {len(todo)} of {len(items)} source files; cache {cache}")
    counts = process(todo, cache, out / "mma", time.time() + a.max_minutes * 60, a.chord_min_beats, a.file_timeout)
    stats = assemble(items, cache, out, a.seed, a.heldout, counts, a.valence_scope)
    if a.stats_copy:
        Path(a.stats_copy).parent.mkdir(parents=True, exist_ok=True)
        Path(a.stats_copy).write_text(json.dumps(stats, indent=1))
    print(json.dumps({k: stats[k] for k in ("pieces", "tokens", "hours_of_music", "pieces_by_source", "files")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
