"""Settings of the windowed emotion estimator."""

from __future__ import annotations

from dataclasses import dataclass

from cuecast.models.common import check


@dataclass
class EmotionConfig:
    device: str = "auto"
    window_s: float = 2.0  # each estimate covers this much media time
    hop_s: float = 0.5  # a new estimate every hop
    smoothing_s: float = 2.0  # time constant of the smoothing that keeps the music from flipping (see follow_rate)
    faces: bool = True
    audio: bool = True
    # fields below added with the estimator (issue 4)
    face_interval_s: float = 0.0  # run face detection + expression this often (0: once per hop)
    hysteresis: float = 0.05  # valence/arousal dead band: the output moves only when the smoothed value leaves it
    direct_va_weight: float = 0.5  # trained head only: blend of the direct picture/sound/face point into the table mapping of its probabilities
    cut_rate_s: float = 6.0  # cut rate (Hanjalic & Xu) is counted over this much recent media time
    face_weights: str = ""  # FER expression weights; empty: the shipped models/weights/fer_mini_xception.pt
    fusion_weights: str = ""  # trained fusion head (tools/train_emotion.py); empty: the documented fixed fusion
    # fields below added with the neutral state and the calibration (issue 16)
    calibration: str = ""  # centre/scale of the picture signals (tools/calibrate_emotion.py); empty: the shipped one
    neutral_temperature: float = 0.15  # how wide the neutral region around ordinary footage is on the affect plane
    # adaptive per-stream centre of the picture scores (affect.StreamNorm); adapt_s = 0 turns it off
    adapt_s: float = 120.0  # media seconds the stream's usual picture is followed over
    adapt_prior_s: float = 60.0  # the calibrated centre counts as this many seconds of evidence
    adapt_max: float = 0.75  # the centre moves at most this many spreads of ordinary footage
    # valence's and arousal's smoothing speeds up while each moves one way (the 1-euro filter; estimator.Smoother): a
    # quarter of the axis a second halves its time constant, a mood that crosses the neutral zone in about two seconds.
    # 0: a fixed one
    follow_rate: float = 0.25

    def validate(self, key: str) -> None:
        check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), f"{key}.device",
               "must be auto, cpu, cuda or cuda:N", self.device)
        check(0.25 <= self.window_s <= 30.0, f"{key}.window_s", "must be in 0.25..30 seconds", self.window_s)
        check(0.05 <= self.hop_s <= self.window_s, f"{key}.hop_s", "must be in 0.05..window_s", self.hop_s)
        check(0.0 <= self.smoothing_s <= 60.0, f"{key}.smoothing_s", "must be in 0..60", self.smoothing_s)
        check(0.0 <= self.face_interval_s <= 10.0, f"{key}.face_interval_s", "must be in 0..10 seconds", self.face_interval_s)
        check(0.0 <= self.hysteresis <= 0.5, f"{key}.hysteresis", "must be in 0..0.5", self.hysteresis)
        check(0.0 <= self.direct_va_weight <= 1.0, f"{key}.direct_va_weight", "must be in 0..1", self.direct_va_weight)
        check(0.02 <= self.neutral_temperature <= 2.0, f"{key}.neutral_temperature", "must be in 0.02..2", self.neutral_temperature)
        check(0.0 <= self.adapt_s <= 3600.0, f"{key}.adapt_s", "must be in 0..3600 seconds (0: off)", self.adapt_s)
        check(1.0 <= self.adapt_prior_s <= 3600.0, f"{key}.adapt_prior_s", "must be in 1..3600 seconds", self.adapt_prior_s)
        check(0.0 <= self.adapt_max <= 2.0, f"{key}.adapt_max", "must be in 0..2 spreads", self.adapt_max)
        check(0.0 <= self.follow_rate <= 10.0, f"{key}.follow_rate", "must be in 0..10 (axis per second; 0: off)", self.follow_rate)
        check(1.0 <= self.cut_rate_s <= 60.0, f"{key}.cut_rate_s", "must be in 1..60 seconds", self.cut_rate_s)
