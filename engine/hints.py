"""The hint sources named in the config, as async iterators of Boundary for the engine."""

from __future__ import annotations

import sys
from typing import AsyncIterator, Callable

from cuecast.engine.config import HintsConfig
from cuecast.types import Boundary


def _host_port(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    return host, int(port)


async def _reported(source: AsyncIterator[Boundary], name: str) -> AsyncIterator[Boundary]:
    """A hint source that fails says so in one line and stops; the music goes on without it."""
    from cuecast.streams.hints import HintError

    try:
        async for b in source:
            yield b
    except HintError as e:
        print(f"cuecast: warning: {name} hints stopped: {e}", file=sys.stderr)


def hint_sources(cfg: HintsConfig, now_media: Callable[[], float]) -> list[AsyncIterator[Boundary]]:
    from cuecast.streams import hints

    def warn(msg: str) -> None:
        print(f"cuecast: warning: {msg}", file=sys.stderr)

    out = []
    if cfg.mqtt:
        host, port = _host_port(cfg.mqtt)
        out.append(_reported(hints.mqtt_hints(host, port, now_media, topic=cfg.mqtt_topic, on_error=warn), "MQTT"))
    if cfg.osc:
        host, port = _host_port(cfg.osc)
        out.append(_reported(hints.osc_hints(host, port, now_media, on_error=warn), "OSC"))
    if cfg.obs:
        out.append(_reported(hints.obs_hints(cfg.obs, now_media, password=cfg.obs_password or None,
                                             delay=cfg.obs_delay_s), "OBS"))
    return out
