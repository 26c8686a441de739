"""Builds the analysis stages and the generator from the config; the one place that knows the classes."""

from __future__ import annotations

from cuecast.engine.config import Config, RuntimeConfig
from cuecast.engine.errors import ConfigError, UserError
from cuecast.models.music.config import GeneratorConfig
from cuecast.types import Generator, Stages


def set_torch_threads(runtime: RuntimeConfig) -> None:
    """Process-wide, so the program calls it once at its start (the CLI does), never an engine: several
    engines may share the process."""
    import torch

    torch.set_num_threads(runtime.torch_threads)


def make_generator(cfg: GeneratorConfig) -> Generator:
    if cfg.backend == "arranger":
        from cuecast.models.music.arranger import Arranger

        gen = Arranger(cfg)
    elif cfg.backend == "transformer":
        from cuecast.models.music.transformer import TransformerGenerator

        try:
            gen = TransformerGenerator(cfg)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e).splitlines()[0]) from None
    else:  # validate() already refuses this; kept for callers that build configs by hand
        raise ConfigError(f"config: generator.backend must be arranger or transformer (got {cfg.backend!r})")
    gen.reset(cfg.seed)
    return gen


def build_stages(cfg: Config, *, forecast: bool | None = None) -> Stages:
    """Detector, emotion estimator, optional cut forecaster and generator for one run."""
    from cuecast.models.cuts.detector import OnlineCutDetector
    from cuecast.models.emotion.estimator import EmotionEstimator

    # the forecaster only matters where the lookahead does not reach the next cut
    if forecast is None:
        forecast = cfg.cuts.forecast and cfg.conductor.use_forecast and cfg.conductor.lookahead_s < 1.0
    forecaster = None
    if forecast:
        from cuecast.models.cuts.forecast import load_forecaster

        try:
            forecaster = load_forecaster(cfg.cuts)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e).splitlines()[0]) from None
    try:
        emotion = EmotionEstimator(cfg.emotion)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e).splitlines()[0]) from None
    return Stages(OnlineCutDetector(cfg.cuts), emotion, forecaster, make_generator(cfg.generator))
