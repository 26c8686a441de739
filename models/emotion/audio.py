"""Sound features for arousal: loudness, spectral brightness (centroid) and onset rate.

Hanjalic & Xu (2005) use the sound energy as one of the three arousal components (with motion and cut
rate); louder, brighter (higher spectral centroid) and busier (more onsets per second) sound is more
arousing, the usual finding in music-emotion work (e.g. Gabrielsson & Lindström 2010, loudness and
timbre brightness with arousal). The constants that centre ordinary programme audio are ours.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

BLOCK_S = 0.046  # ~1024 samples at 22.05 kHz: one analysis block


class AudioFeatures:
    """Consumes audio chunks, keeps per-block (t, loudness dBFS, centroid Hz, onset flag) for windows."""

    def __init__(self, keep_s: float = 30.0):
        self.blocks: deque[tuple[float, float, float, bool]] = deque()
        self.keep_s = keep_s
        self._carry = np.zeros(0, np.float32)
        self._carry_t = 0.0
        self._prev_mag: np.ndarray | None = None
        self._flux_hist: deque[float] = deque(maxlen=22)  # ~1 s of spectral flux for the onset threshold
        self._last_onset = -1.0

    def add(self, t: float, samples: np.ndarray, rate: int) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0 or rate <= 0:
            return
        if self._carry.size == 0 or abs(self._carry_t + self._carry.size / rate - t) > 0.05:
            self._carry, self._carry_t = x, t  # first chunk, or a gap: start afresh at this chunk
        else:
            self._carry = np.concatenate([self._carry, x])
        n = max(64, int(BLOCK_S * rate))
        while self._carry.size >= n:
            self._block(self._carry_t, self._carry[:n], rate)
            self._carry = self._carry[n:]
            self._carry_t += n / rate
        while self.blocks and self.blocks[0][0] < self._carry_t - self.keep_s:
            self.blocks.popleft()

    def _block(self, t: float, x: np.ndarray, rate: int) -> None:
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        db = 20.0 * math.log10(max(rms, 1e-5))  # floor at -100 dBFS: digital silence
        mag = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
        total = float(mag.sum())
        centroid = float((mag * freqs).sum() / total) if total > 1e-9 else 0.0
        onset = False
        if self._prev_mag is not None and self._prev_mag.shape == mag.shape:
            # spectral flux (positive changes, log-compressed) against a running threshold
            flux = float(np.maximum(np.log1p(100 * mag) - np.log1p(100 * self._prev_mag), 0).mean())
            hist = np.array(self._flux_hist) if self._flux_hist else np.array([flux])
            thresh = float(np.median(hist)) * 1.5 + 0.02
            onset = flux > thresh and db > -50 and t - self._last_onset > 0.1
            if onset:
                self._last_onset = t
            self._flux_hist.append(flux)
        self._prev_mag = mag
        self.blocks.append((t, db, centroid, onset))

    def window(self, start: float, end: float) -> tuple[float, float, float] | None:
        """(loudness dBFS, centroid Hz, onsets per second) over [start, end), or None without audio there."""
        sel = [b for b in self.blocks if start <= b[0] < end]
        if len(sel) < 2:
            return None
        db = np.array([b[1] for b in sel])
        # loudness as the energy mean, not the mean of dB values (a few loud blocks are loud)
        loud = 10.0 * math.log10(max(float(np.mean(10 ** (db / 10.0))), 1e-10))
        weights = 10 ** (db / 20.0)
        cent = float(np.average([b[2] for b in sel], weights=weights)) if weights.sum() > 0 else 0.0
        onsets = sum(1 for b in sel if b[3])
        span = max(sel[-1][0] - sel[0][0] + BLOCK_S, BLOCK_S)
        return loud, cent, onsets / span


def audio_arousal(loudness_db: float, centroid_hz: float, onset_rate: float) -> float:
    """Arousal in (-1, 1) from a window's sound features (see the module docstring)."""
    z_loud = (loudness_db + 28.0) / 10.0
    z_bright = math.log2(max(centroid_hz, 50.0) / 1500.0)
    z_onset = (onset_rate - 2.0) / 2.0
    return math.tanh(0.5 * z_loud + 0.25 * z_bright + 0.25 * z_onset)
