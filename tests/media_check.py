"""Measure what a viewer sees and hears in a written video: cuts in the decoded picture, onsets in the audio.

Used by the --video-out tests: everything is measured from the file (or stream) itself, not from what the
engine says it did.
"""

from __future__ import annotations

import av
import numpy as np


def decode(path_or_url: str, timeout_s: float | None = None, **open_options):
    """(frame times, small RGB pictures, audio (n, channels) float32, audio rate, stream kinds); audio
    sample 0 is at the first audio frame's time, returned as the sixth item."""
    opts = dict(open_options)
    with av.open(path_or_url, **opts) as c:
        kinds = [s.type for s in c.streams]
        times, pics, audio, rate, audio_t0 = [], [], [], 0, None
        streams = [s for s in (c.streams.video[:1] + c.streams.audio[:1])]
        for packet in c.demux(streams):
            for f in packet.decode():
                if isinstance(f, av.VideoFrame):
                    times.append(float(f.pts * f.time_base))
                    pics.append(f.to_ndarray(width=64, height=36, format="rgb24").astype(np.float32))
                else:
                    rate = f.sample_rate
                    if audio_t0 is None and f.pts is not None:
                        audio_t0 = float(f.pts * f.time_base)
                    audio.append(f.to_ndarray().reshape(len(f.layout.channels), -1).T)
    samples = np.concatenate(audio) if audio else np.zeros((0, 2), np.float32)
    return np.array(times), pics, samples.astype(np.float32), rate, kinds, audio_t0 or 0.0


def picture_cuts(times: np.ndarray, pics: list, threshold: float = 15.0) -> list[float]:
    """Times of the first frame of each new shot: mean absolute RGB difference to the frame before (a
    static shot differs from frame to frame by compression noise only, 1-2 levels)."""
    cuts = []
    for k in range(1, len(pics)):
        if np.mean(np.abs(pics[k] - pics[k - 1])) > threshold:
            cuts.append(float(times[k]))
    return cuts


def onset_strength(samples: np.ndarray, rate: int, t0: float = 0.0, hop_s: float = 0.001, win_s: float = 0.02):
    """(times, strength): the rise of log energy from the window before each point to the window after."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    hop, win = max(1, int(hop_s * rate)), max(2, int(win_s * rate))
    sq = np.concatenate([[0.0], np.cumsum(mono.astype(np.float64) ** 2)])
    centres = np.arange(win, len(mono) - win, hop)
    before = (sq[centres] - sq[centres - win]) / win
    after = (sq[centres + win] - sq[centres]) / win
    floor = 1e-5  # energy of -50 dBFS: quieter changes (a reverb tail, codec noise) are no onsets
    strength = np.log10(after + floor) - np.log10(before + floor)
    return t0 + centres / rate, strength


def onset_near(samples: np.ndarray, rate: int, t: float, search_s: float, t0: float = 0.0) -> tuple[float, float, float]:
    """(time of the strongest onset within search_s of t, its strength, the 95th percentile of all strengths);
    t0: the time of sample 0."""
    times, strength = onset_strength(samples, rate, t0)
    near = np.flatnonzero(np.abs(times - t) <= search_s)
    if near.size == 0:
        return float("nan"), 0.0, float(np.percentile(strength, 95)) if strength.size else 0.0
    i = near[np.argmax(strength[near])]
    return float(times[i]), float(strength[i]), float(np.percentile(strength, 95))


def onsets(samples: np.ndarray, rate: int, t0: float = 0.0, min_strength: float = 0.5, gap_s: float = 0.03) -> np.ndarray:
    """Onset times: peaks of onset_strength at least min_strength (energy up 3x from the 20 ms before to the 20 ms after, at 0.5), the
    strongest within gap_s of each other."""
    times, strength = onset_strength(samples, rate, t0)
    order = np.argsort(-strength)
    taken: list[float] = []
    for i in order:
        if strength[i] < min_strength:
            break
        if all(abs(times[i] - t) > gap_s for t in taken):
            taken.append(float(times[i]))
    return np.array(sorted(taken))


def nearest(values: np.ndarray, t: float) -> float:
    """Distance from t to the nearest of values (inf when there are none)."""
    return float(np.min(np.abs(values - t))) if len(values) else float("inf")
