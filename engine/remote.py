"""The remote controls the config names (MQTT, OSC in and out, the overlay server), run beside one engine.

Everything that can be refused is refused before the engine starts, as a UserError (one line, exit 2): a
missing extra, a malformed MQTT URL, a listener beyond loopback without a token, a port already taken.
After that nothing a bridge meets (a lost broker, a bad command) stops the music: it is one warning line.
"""

from __future__ import annotations

import asyncio
import contextlib

from cuecast.engine.config import ControlConfig
from cuecast.engine.errors import UserError
from cuecast.engine.hints import Warnings, require_extra


def _host_port(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    return host.strip("[]"), int(port)


class Remote:
    def __init__(self, cfg: ControlConfig, warn: Warnings | None = None, latency_s: float = 0.0):
        from cuecast.streams.hints import is_loopback

        self.cfg = cfg
        self.warn = warn or Warnings()
        self.latency_s = latency_s + cfg.osc_latency_ms / 1000.0
        self.mqtt_target = None
        self.overlay = None
        self.osc_in = None
        self.osc_out = None
        self.mqtt = None
        self._tasks: list[asyncio.Task] = []  # bridges that end when the engine's events end
        self._listen: asyncio.Task | None = None  # the OSC listener, which runs until cancelled
        if cfg.mqtt:
            require_extra("aiomqtt", "--mqtt")
            from cuecast.streams.bridges.mqtt import parse_mqtt_url

            try:
                self.mqtt_target = parse_mqtt_url(cfg.mqtt, cfg.name)
            except ValueError as e:
                raise UserError(str(e)) from None
        if cfg.osc_in or cfg.osc_out:
            require_extra("pythonosc", "--osc-in/--osc-out")
        if cfg.overlay:
            require_extra("aiohttp", "--overlay")
        for what, spec in (("--osc-in", cfg.osc_in), ("--overlay", cfg.overlay)):
            if spec and not is_loopback(_host_port(spec)[0]) and not cfg.token:
                raise UserError(f"{what} {spec} listens beyond this machine: give a --token (control.token) "
                                "that senders must present")

    @property
    def active(self) -> bool:
        return bool(self.cfg.mqtt or self.cfg.osc_in or self.cfg.osc_out or self.cfg.overlay)

    async def serve(self, link) -> None:
        """Run the bridges for `link` (an Engine) until cancelled (LivePlayer's `control`)."""
        async with self.running(link):
            await asyncio.Future()

    @contextlib.asynccontextmanager
    async def running(self, link):
        """Start the bridges for `link` (an Engine); stop them when the block ends."""
        from cuecast.streams.hints import is_loopback

        cfg = self.cfg
        try:
            if cfg.osc_in:
                from cuecast.streams.bridges.osc import OscIn

                host, port = _host_port(cfg.osc_in)
                self.osc_in = OscIn(host, port, link, self.warn, token=None if is_loopback(host) else cfg.token)
                self._listen = asyncio.create_task(self.osc_in.run())
                await self._ready(self.osc_in.ready, self._listen)
            if cfg.overlay:
                from cuecast.streams.bridges.overlay import OverlayServer

                host, port = _host_port(cfg.overlay)
                self.overlay = OverlayServer(link, host, port, token=None if is_loopback(host) else cfg.token)
                try:
                    await self.overlay.start()
                except OSError as e:
                    self.overlay = None
                    raise UserError(str(e)) from None
                print(f"cuecast: overlay at {self.overlay.url} (add it to OBS as a browser source)", flush=True)
            if cfg.osc_out:
                from cuecast.streams.bridges.osc import OscOut

                host, port = _host_port(cfg.osc_out)
                self.osc_out = OscOut(host, port, link, latency_s=self.latency_s)
                self._tasks.append(asyncio.create_task(self.osc_out.run()))
            if self.mqtt_target is not None:
                from cuecast.streams.bridges.mqtt import MqttBridge

                self.mqtt = MqttBridge(self.mqtt_target, link, self.warn)
                self._tasks.append(asyncio.create_task(self.mqtt.run()))
            yield self
        finally:
            await self._stop()

    async def _ready(self, event: asyncio.Event, task: asyncio.Task) -> None:
        waiter = asyncio.create_task(event.wait())
        await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            raise UserError(str(task.exception() or "the OSC listener ended at start"))

    async def _stop(self) -> None:
        if self._listen is not None:
            self._listen.cancel()
            await asyncio.gather(self._listen, return_exceptions=True)
            self._listen = None
        if self._tasks:  # the engine ended and closed its events: let the bridges say goodbye (MQTT offline)
            _, pending = await asyncio.wait(self._tasks, timeout=3)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self.overlay is not None:
            await self.overlay.close()
        self.warn.flush()
