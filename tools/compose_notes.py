"""Compose the music bench's five emotions (x seeds, with and without cuts) and write every note to JSON, or
compare them with an earlier dump: a speed change to the generator must not change what it plays.

    python tools/compose_notes.py before.json                     (on the old code)
    python tools/compose_notes.py after.json --compare before.json  (on the new code; exit 1 on a difference)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

EMOTIONS = ((-0.7, -0.7), (-0.7, 0.7), (0.7, -0.7), (0.7, 0.7), (0.0, 0.0))  # as tools/bench_music.py
CUTS = ((), (4.9, 11.3, 15.0))  # no cut, and cuts between beats


def compose_all(seeds: list[int], seconds: float, overrides: dict) -> dict[str, list]:
    from cuecast.engine.compose import compose
    from cuecast.engine.config import load_config

    cfg = load_config(None, {"generator.backend": "transformer", **overrides})
    out = {}
    for cuts in CUTS:
        for seed in seeds:
            for v, a in EMOTIONS:
                notes, _ = compose(cfg, v, a, seconds, list(cuts), seed=seed)
                out[f"v{v} a{a} seed{seed} cuts{list(cuts)}"] = [[n.start, n.end, n.pitch, n.velocity, n.instrument] for n in notes]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="JSON file to write the notes to")
    ap.add_argument("--compare", help="an earlier dump: report the compositions that differ")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help='config overrides, e.g. generator.top_p=0.9')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the bench and the live engine run it
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    t = time.perf_counter()
    notes = compose_all(a.seeds, a.seconds, overrides)
    print(f"{len(notes)} compositions, {sum(map(len, notes.values()))} notes, {time.perf_counter() - t:.1f} s")
    with open(a.out, "w") as f:
        json.dump(notes, f)
    if a.compare:
        with open(a.compare) as f:
            before = json.load(f)
        differ = [k for k in before.keys() | notes.keys() if before.get(k) != notes.get(k)]
        print(f"{len(differ)} of {len(before.keys() | notes.keys())} compositions differ" + (": " + ", ".join(sorted(differ)[:5]) if differ else ""))
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
