"""Settings of the windowed emotion estimator."""

from __future__ import annotations

from dataclasses import dataclass


def _check(cond: bool, key: str, msg: str, value) -> None:
    if not cond:
        raise ValueError(f"config: {key} {msg} (got {value!r})")


@dataclass
class EmotionConfig:
    device: str = "auto"
    window_s: float = 2.0  # each estimate covers this much media time
    hop_s: float = 0.5  # a new estimate every hop
    smoothing_s: float = 2.0  # time constant of the smoothing that keeps the music from flipping
    faces: bool = True
    audio: bool = True

    def validate(self, key: str) -> None:
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), f"{key}.device",
               "must be auto, cpu, cuda or cuda:N", self.device)
        _check(0.25 <= self.window_s <= 30.0, f"{key}.window_s", "must be in 0.25..30 seconds", self.window_s)
        _check(0.05 <= self.hop_s <= self.window_s, f"{key}.hop_s", "must be in 0.05..window_s", self.hop_s)
        _check(0.0 <= self.smoothing_s <= 60.0, f"{key}.smoothing_s", "must be in 0..60", self.smoothing_s)
