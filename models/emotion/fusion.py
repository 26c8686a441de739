"""Fusion of the signals into Ekman-6: a trainable torch head, and the fixed fusion used until one is trained.

The head follows EMSYNC's video branch in spirit: each signal gets its own projection, the window's time
steps are pooled by attention, and a linear layer gives six logits. Its input is a window cut into
N_STEPS equal time bins (see `window_steps`):
  picture (6): standardised brightness, chroma, colourfulness, warmth, motion, cuts in the bin
  faces   (7): Ekman-6 distribution of the faces seen in the bin and their evidence weight
  audio   (3): standardised loudness, spectral brightness, onset rate
with a mask per signal and bin (no face analysed, no audio) so missing signals neither vote nor shift
the others.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cuecast.models.common import checkpoint_fields, load_checkpoint, load_state
from cuecast.models.emotion.affect import Calibration, load_calibration
from cuecast.models.emotion.va import affect_probs, va_from_probs

N_STEPS = 8
FACE_SHARE, FACE_SHARE_MAX = 0.5, 0.9  # what a close-up weighs against a telling / a neutral picture (fixed fusion)
# Faces are weaker evidence of arousal than of valence: an expression class says pleasant or not far more reliably
# than calm or excited (AffectNet's baselines agree with annotators about half as well on arousal as on valence,
# CCC ~0.34 against ~0.60), while the picture's motion and cut rate measure arousal directly. So on the arousal
# axis a face weighs this fraction of its valence share; otherwise a smiling face on a frozen frame read as
# busier than the same scene moving (the table puts joy at +0.46 arousal).
FACE_AROUSAL_FRACTION = 0.5
DIMS = {"picture": 6, "faces": 7, "audio": 3}


class FusionHead(nn.Module):
    def __init__(self, d: int = 32, n_classes: int = 6):
        super().__init__()
        self.signals: tuple[str, ...] = tuple(DIMS)  # the signals it was trained with (set by load_head)
        self.proj = nn.ModuleDict({k: nn.Sequential(nn.Linear(n, d), nn.GELU(), nn.Linear(d, d)) for k, n in DIMS.items()})
        self.missing = nn.ParameterDict({k: nn.Parameter(torch.zeros(d)) for k in DIMS})  # learned "absent" vectors
        self.pos = nn.Parameter(torch.zeros(N_STEPS, d))
        self.score = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_classes))

    def forward(self, x: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> torch.Tensor:
        """x[k]: B x T x DIMS[k]; mask[k]: B x T (1 where the signal is present). Returns B x 6 logits."""
        h = self.pos
        for k in DIMS:
            m = mask[k].unsqueeze(-1)
            h = h + m * self.proj[k](x[k]) + (1 - m) * self.missing[k]
        any_signal = torch.stack([mask[k] for k in DIMS]).amax(0)  # B x T
        s = self.score(h).squeeze(-1).masked_fill(any_signal < 0.5, -1e4)
        w = torch.softmax(s, dim=1).unsqueeze(-1)  # attention over the window's time steps
        return self.out((w * h).sum(1))


def window_steps(frames, faces, audio_blocks, cuts, start: float, end: float, cal: Calibration | None = None):
    """Bin one window's records into N_STEPS steps of head input (numpy arrays and masks).

    frames: iterable of FrameAffect; faces: (t, probs6 | None, neutral, weight); audio_blocks: (t, dB, Hz,
    onset); cuts: media times; cal: the picture signals' calibration (None: the shipped one).
    """
    z = (cal or load_calibration()).z
    edges = np.linspace(start, end, N_STEPS + 1)
    x = {k: np.zeros((N_STEPS, n), np.float32) for k, n in DIMS.items()}
    m = {k: np.zeros(N_STEPS, np.float32) for k in DIMS}
    idx = lambda t: min(N_STEPS - 1, max(0, int(np.searchsorted(edges, t, side="right")) - 1))  # noqa: E731
    pic: list[list] = [[] for _ in range(N_STEPS)]
    for f in frames:  # motion is NaN on a cut frame (a cut is not motion): left out of the bin's mean
        if start <= f.t < end:
            pic[idx(f.t)].append([z("brightness", f.brightness), z("saturation", f.saturation),
                                  z("colourfulness", f.colourfulness), z("warmth", f.warmth),
                                  math.tanh(z("motion", f.motion) / 2) * 2])
    for i, rows in enumerate(pic):
        if rows:
            r = np.array(rows)
            motion = r[:, 4][~np.isnan(r[:, 4])]
            x["picture"][i, :4] = r[:, :4].mean(axis=0)
            x["picture"][i, 4] = motion.mean() if motion.size else 0.0
            m["picture"][i] = 1
    for c in cuts:
        if start <= c < end:
            x["picture"][idx(c), 5] += 1
    for t, p6, _, wgt in faces:
        # only analyses that found a face: "no face" is the learned missing vector, so a head trained on
        # footage without faces has never fitted its face projection and masks it (see save_head)
        if start <= t < end and p6 is not None:
            i = idx(t)
            x["faces"][i] = np.concatenate([p6, [wgt]])
            m["faces"][i] = 1
    aud: list[list] = [[] for _ in range(N_STEPS)]
    for t, db, hz, onset in audio_blocks:
        if start <= t < end:
            aud[idx(t)].append([(db + 28) / 10, math.log2(max(hz, 50) / 1500), float(onset)])
    for i, rows in enumerate(aud):
        if rows:
            r = np.array(rows)
            x["audio"][i] = [r[:, 0].mean(), r[:, 1].mean(), r[:, 2].sum() / max((end - start) / N_STEPS, 1e-3) / 2 - 1]
            m["audio"][i] = 1
    return x, m


def load_head(path: str | Path, device) -> FusionHead:
    p = Path(path)
    fix = "train one with `python tools/train_emotion.py DATA_DIR --out PATH`, or set emotion.fusion_weights = \"\" for the fixed fusion"
    if not p.is_file():
        raise FileNotFoundError(f"fusion head weights not found at {p}: {fix}")
    what = "fusion head weights"
    ckpt = load_checkpoint(p, what, fix)  # data only: a pickle that would run code is refused
    checkpoint_fields(ckpt, {"state": dict, "signals": (list, tuple)}, what, p, fix)
    head = FusionHead()
    load_state(head, ckpt["state"], what, p, fix)
    head.signals = tuple(s for s in ckpt["signals"] if s in DIMS)
    return head.to(device).eval()


def save_head(head: FusionHead, path: str | Path, signals) -> None:
    """The head and the signals its training data had: a signal it never saw is masked out at inference
    (its projection was never trained), so the head falls back on its learned "missing" vector."""
    torch.save({"state": head.state_dict(), "signals": list(signals)}, path)


def fixed_fusion(picture_va: tuple[float, float], audio_arousal: float | None,
                 faces: tuple[np.ndarray, float, float] | None,
                 temperature: float = 0.15) -> tuple[np.ndarray, float, float, float]:
    """The documented fusion used until a trained head exists. Returns (probs6, neutral, valence, arousal).

    1. Sound joins the picture's arousal (Hanjalic & Xu weigh motion, rhythm and sound alike; here the
       picture's colour+motion+cut arousal counts 0.6 and the sound 0.4).
    2. The picture/sound point becomes a distribution over the six emotions and a neutral share
       (va.affect_probs): near the origin, where calibrated ordinary footage sits, it is mostly neutral.
    3. Faces (their six probabilities and FER's neutral share) mix in by their evidence weight (the size
       of the largest face in frame) times a share between FACE_SHARE and FACE_SHARE_MAX: on screen,
       faces are the most direct carrier of emotion and a calm face is evidence of calm, but a scene that
       says something itself (a dark room, a fast edit) counts as much as a close-up. The picture's
       neutral share is an absence of evidence, so the more neutral the picture, the more the face decides.
    4. Valence/arousal: the picture/sound point itself, mixed on the plane with the faces' point (EMSYNC's
       table, without its negative bias, va.va_from_probs, on the faces' probabilities) by the same share,
       on the arousal axis by FACE_AROUSAL_FRACTION of it.
       The picture's point is not sent through the table and back: four of the six emotions lie in the
       negative half and none is calm and pleasant, so that round trip read (+0.5, 0) as +0.32 and
       (-0.5, 0) as -0.43, and (+-0.5, -0.6) as +0.25 / -0.61: a bias towards gloom that the picture never
       measured (issue 16).
    """
    v, a = picture_va
    if audio_arousal is not None:
        a = 0.6 * a + 0.4 * audio_arousal
    probs, neutral = affect_probs(v, a, temperature)
    point = np.array([v, a])
    if faces is not None:
        f_probs, f_neutral, f_w = faces
        w = float(f_w) * (FACE_SHARE + (FACE_SHARE_MAX - FACE_SHARE) * neutral)
        probs = (1 - w) * probs + w * f_probs
        neutral = (1 - w) * neutral + w * float(f_neutral)
        wa = w * FACE_AROUSAL_FRACTION
        fv, fa = va_from_probs(f_probs, f_neutral)
        point = np.array([(1 - w) * point[0] + w * fv, (1 - wa) * point[1] + wa * fa])
    return probs / probs.sum(), float(neutral), float(np.clip(point[0], -1, 1)), float(np.clip(point[1], -1, 1))
