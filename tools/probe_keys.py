"""Does the music transformer play in the key it chose? Fresh starts at a fixed emotion, steering off.

For each valence x arousal x seed, compose through the engine with all sampling steering off (the model
alone), then compare the key tokens the model chose with the key its played notes have (the same
Krumhansl estimate the training windows label key tokens with). Issue 14's no-steer valence check fails
when either link breaks: valence -> the key token's mode, or the key token -> the notes.

    python tools/probe_keys.py --weights runs/music/step_3000.pt
    python tools/probe_keys.py --weights runs/music/best.pt --seeds 0,1,2 --seconds 20 --steer
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from cuecast.engine import compose as C
from cuecast.engine.config import load_config
from cuecast.engine.errors import UserError
from cuecast.models.music import tokens as T
from cuecast.models.music import windows as W
from cuecast.models.music.theory import NOTE_NAMES
from cuecast.models.music.transformer import DEFAULT_WEIGHTS

STEERS = ("mode_steer", "density_steer", "velocity_steer", "balance_steer", "register_steer", "key_steer")


def key_name(mode: int, tonic: int) -> str:
    return f"{NOTE_NAMES[tonic % 12]} {'minor' if mode else 'major'}"


def compose_tokens(cfg, valence: float, arousal: float, seconds: float, seed: int) -> np.ndarray:
    """The token log of one composition (the generator compose builds, caught on its way in)."""
    made = []
    make = C.make_generator
    C.make_generator = lambda g: made.append(make(g)) or made[-1]
    try:
        C.compose(cfg, valence, arousal, seconds, [], seed=seed)
    finally:
        C.make_generator = make
    return np.array([tok for tok, *_ in made[0].log], dtype=np.int64)


def probe(cfg, valence: float, arousal: float, seconds: float, seed: int) -> dict:
    toks = compose_tokens(cfg, valence, arousal, seconds, seed)
    chosen = [(int(t - T.KEY0) // 12, int(t - T.KEY0) % 12) for t in toks if T.KEY0 <= t < T.KEY0 + T.N_KEYS]
    mode, tonic, score, n = W.key_of(toks)
    return {"valence": valence, "arousal": arousal, "seed": seed, "chosen": chosen, "played": (mode, tonic),
            "score": score, "pitched_notes": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--seeds", default="0,1", help="comma-separated sampling seeds")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--steer", action="store_true", help="keep the default steering on (default: the model alone)")
    ap.add_argument("--key-steer", type=float, default=None,
                    help="this much key steering on top (the notes asked to keep to the key chosen; see steer.py)")
    a = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error("--seeds must look like 0,1,2")
    torch.set_num_threads(1)
    over = {"generator.backend": "transformer", "generator.weights": a.weights}
    if not a.steer:
        over.update({f"generator.{k}": 0.0 for k in STEERS})
    if a.key_steer is not None:
        over["generator.key_steer"] = a.key_steer
    try:
        cfg = load_config(None, over)
        rows = [probe(cfg, v, ar, a.seconds, s) for v in (-0.9, 0.9) for ar in (-0.9, 0.0, 0.9) for s in seeds]
    except (FileNotFoundError, ValueError, UserError) as e:
        print(f"probe_keys: {e}", file=sys.stderr)
        return 2
    mode_right = follows = same_mode = with_key = 0
    for r in rows:
        want_minor = r["valence"] < 0
        first = r["chosen"][0] if r["chosen"] else None
        with_key += first is not None
        mode_right += first is not None and bool(first[0]) == want_minor
        follows += first is not None and first == r["played"]
        same_mode += first is not None and first[0] == r["played"][0]
        chosen = ", ".join(key_name(*k) for k in r["chosen"][:4]) or "none"
        print(f"valence {r['valence']:+.1f} arousal {r['arousal']:+.1f} seed {r['seed']}: chose {chosen:<28} "
              f"played {key_name(*r['played']):<9} key score {r['score']:+.2f} ({r['pitched_notes']} pitched notes)")
    print(f"\n{len(rows)} pieces: a key chosen in {with_key}, its mode the one valence asks in {mode_right}, "
          f"the notes in the first key chosen in {follows}, in its mode in {same_mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
