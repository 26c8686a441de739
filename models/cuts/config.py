"""Settings of the online cut detector and the cut forecaster."""

from __future__ import annotations

from dataclasses import dataclass

from cuecast.models.common import check


@dataclass
class CutConfig:
    device: str = "auto"  # "auto" picks CUDA when present, else CPU
    width: int = 64  # detectors work on frames downscaled to this width
    min_shot_s: float = 0.4  # no two boundaries closer than this
    gradual: bool = True  # report fades and dissolves as boundaries too
    forecast: bool = True  # run the cut forecaster
    forecast_weights: str = ""  # empty: the shipped models/weights/cut_forecast.pt

    def validate(self, key: str) -> None:
        check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), f"{key}.device",
               "must be auto, cpu, cuda or cuda:N", self.device)
        check(16 <= self.width <= 640, f"{key}.width", "must be in 16..640", self.width)
        check(0.0 <= self.min_shot_s <= 10.0, f"{key}.min_shot_s", "must be in 0..10", self.min_shot_s)
