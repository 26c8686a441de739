"""MQTT bridge (aiomqtt): state and boundaries out, commands in, through any broker.

Topics under PREFIX (default `cuecast/<name>`):

- PREFIX/state     JSON, several times a second (cuecast.control.State.to_json)
- PREFIX/boundary  JSON, each cut as its chord is planned: kind, media time, when the chord plays
- PREFIX/status    `online` / `offline`, retained; `offline` is also the last will, so a crash shows
- PREFIX/set/NAME  commands in: mood, intensity, tempo, mute, panic, generator, cut (cuecast.control)
- PREFIX/error     JSON answer to a command that was refused (nothing changed): topic, error, payload

A lost broker is one warning line; the bridge reconnects with back-off (0.5 s doubling to 10 s) and
republishes its status, while the music goes on untouched. States queued while away are not replayed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from cuecast.control import BoundaryEvent, CommandError, State, parse_command
from cuecast.streams.hints import Backoff

MAX_INFLIGHT = 512  # commands waiting for the engine; more at once are refused on PREFIX/error
STALE_S = 1.0  # a state older than this (queued while the broker was away) is not published


@dataclass
class MqttTarget:
    host: str
    port: int
    prefix: str
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/{self.prefix}"


def default_name() -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return name or "cuecast"


def parse_mqtt_url(url: str, name: str = "") -> MqttTarget:
    """mqtt[s]://[user:pass@]HOST[:PORT][/PREFIX][?ca=FILE]; ValueError with a one-line reason."""
    u = urlsplit(url.strip())
    if u.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"--mqtt wants mqtt://HOST[:PORT][/PREFIX] or mqtts://... (got {url!r})")
    if not u.hostname:
        raise ValueError(f"--mqtt: no broker host in {url!r}")
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError:
        raise ValueError(f"--mqtt: bad port in {url!r}") from None
    prefix = u.path.strip("/") or f"cuecast/{name or default_name()}"
    if any(c in prefix for c in "#+") or "//" in prefix:
        raise ValueError(f"--mqtt: the topic prefix {prefix!r} may not hold '#', '+' or empty levels")
    query = parse_qs(u.query)
    return MqttTarget(host=u.hostname, port=port, prefix=prefix, tls=u.scheme == "mqtts",
                      username=unquote(u.username) if u.username else None,
                      password=unquote(u.password) if u.password else None,
                      ca_file=query.get("ca", [None])[0])


class MqttBridge:
    """Runs until cancelled: connect, publish, take commands; on a lost broker, warn and reconnect."""

    def __init__(self, target: MqttTarget, link, warn: Callable[..., None] | None = None, keepalive: int = 5):
        self.target = target
        self.link = link
        self.warn = warn or (lambda msg, key=None: None)
        self.keepalive = keepalive
        self.connected = asyncio.Event()
        self.connections = 0
        self._done = False  # the engine ended: say offline and stop
        self._inflight: set[asyncio.Task] = set()

    def topic(self, leaf: str) -> str:
        return f"{self.target.prefix}/{leaf}"

    def _tls(self) -> ssl.SSLContext | None:
        if not self.target.tls:
            return None
        return ssl.create_default_context(cafile=self.target.ca_file)

    async def run(self) -> None:
        import aiomqtt

        events = self.link.subscribe()
        backoff = Backoff()
        lost = False
        try:
            while not self._done:
                try:
                    will = aiomqtt.Will(self.topic("status"), b"offline", qos=1, retain=True)
                    async with aiomqtt.Client(self.target.host, self.target.port, username=self.target.username,
                                              password=self.target.password, will=will, keepalive=self.keepalive,
                                              identifier=f"cuecast-{uuid.uuid4().hex[:12]}",
                                              tls_context=self._tls(), timeout=5) as client:
                        await client.publish(self.topic("status"), b"online", qos=1, retain=True)
                        await client.subscribe(self.topic("set/#"), qos=1)
                        self.connections += 1
                        if lost:
                            self.warn(f"MQTT: back on {self.target}")
                        lost = False
                        backoff.reset()
                        self.connected.set()
                        await self._session(client, events)
                except aiomqtt.MqttError as e:
                    self.connected.clear()
                    lost = True
                    self.warn(f"MQTT: broker {self.target.host}:{self.target.port}: {e}; "
                              f"retrying in {backoff.next:g} s", key="mqtt-lost")
                    await backoff.wait()
                except ssl.SSLError as e:
                    self.connected.clear()
                    lost = True
                    self.warn(f"MQTT: TLS with {self.target.host}:{self.target.port} failed: {e}; "
                              f"retrying in {backoff.next:g} s", key="mqtt-tls")
                    await backoff.wait()
        finally:
            events.close()
            for t in list(self._inflight):
                t.cancel()

    async def _session(self, client, events) -> None:
        tasks = [asyncio.create_task(self._publish(client, events)), asyncio.create_task(self._commands(client))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # raises the MqttError that ended the session
            if self._done:
                await self._offline(client)
        except asyncio.CancelledError:  # the engine stops: say so before leaving (the will is for crashes)
            await self._offline(client)
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _offline(self, client) -> None:
        try:
            await asyncio.wait_for(client.publish(self.topic("status"), b"offline", qos=1, retain=True), 2)
        except Exception:
            pass

    async def _publish(self, client, events) -> None:
        async for ev in events:
            if isinstance(ev, State):
                if time.monotonic() - ev.wall > STALE_S:
                    continue
                await client.publish(self.topic("state"), json.dumps(ev.to_json()).encode())
            elif isinstance(ev, BoundaryEvent):
                await client.publish(self.topic("boundary"), json.dumps(ev.to_json()).encode(), qos=1)
        self._done = True  # the engine closed its events: it has ended

    async def _commands(self, client) -> None:
        base = self.topic("set/")
        async for msg in client.messages:
            topic = str(msg.topic)
            payload = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else str(msg.payload or "").encode()
            try:
                if len(self._inflight) >= MAX_INFLIGHT:
                    raise CommandError(f"too many commands at once ({MAX_INFLIGHT} waiting): dropped")
                cmd = parse_command(topic[len(base):], payload, source="mqtt")
            except CommandError as e:
                await self._refuse(client, topic, payload, e)
                continue
            task = asyncio.create_task(self._apply(client, topic, payload, cmd))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _apply(self, client, topic: str, payload: bytes, cmd) -> None:
        try:
            await self.link.apply(cmd)
        except CommandError as e:
            try:
                await self._refuse(client, topic, payload, e)
            except Exception:
                pass  # the broker went meanwhile: the warning about that is enough

    async def _refuse(self, client, topic: str, payload: bytes, e: Exception) -> None:
        self.warn(f"MQTT command on {topic} refused: {e}", key=f"mqtt-refused:{topic}")
        body = {"topic": topic, "error": str(e), "payload": payload[:200].decode("utf-8", "replace")}
        await client.publish(self.topic("error"), json.dumps(body).encode(), qos=1)
