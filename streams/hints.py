"""Cut hints from outside: a cut announced over MQTT, OSC, or by OBS (obs-websocket v5).

Each source is an async iterator of Boundary(kind="hint", source="mqtt"|"osc"|"obs"). Hints arrive in
wall-clock time; the engine passes `now_media()`, the media time of the live edge right now, and a hint
lands at:

- MQTT, payload JSON {"in": s} (the cut happens s seconds from now), {"t": m} (at media time m), a bare
  number (seconds from now), or empty (now). Optional "confidence" (0..1). Topic default "cuecast/cut".
- OSC, "/cuecast/cut [s]" (s seconds from now, default 0) or "/cuecast/cut_at m" (media time m).
- OBS, SceneTransitionStarted: the new scene starts to show now (plus `delay`, the time the picture takes
  from OBS to the engine); the hint spans the transition's duration, which OBS does not put in the event,
  so it is asked for at connection (GetCurrentSceneTransition) and followed through
  CurrentSceneTransitionChanged / CurrentSceneTransitionDurationChanged.

A malformed message is skipped (and reported through `on_error`), never fatal: a stray publisher must not
stop the music. Connection failures raise HintError with a one-line reason.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import uuid
from typing import AsyncIterator, Callable

from cuecast.types import Boundary

NowMedia = Callable[[], float]
MQTT_TOPIC = "cuecast/cut"
OSC_CUT, OSC_CUT_AT = "/cuecast/cut", "/cuecast/cut_at"
MAX_AHEAD_S = 600.0  # a hint further ahead than this is a mistake, not a plan


class HintError(Exception):
    """A hint source cannot connect or was refused (the engine reports it as a user error)."""


def _report(on_error: Callable[[str], None] | None, msg: str) -> None:
    if on_error is not None:
        on_error(msg)


def hint_from_payload(payload: bytes | str, now: float, source: str) -> Boundary:
    """Map one message to a boundary in media time; ValueError when it is not a hint."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) else str(payload)
    text = text.strip()
    if not text:
        return Boundary(t=now, kind="hint", source=source, decided_at=now)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"not JSON or a number: {text[:60]!r}") from None
    conf = 1.0
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        t = now + float(data)
    elif isinstance(data, dict):
        conf = float(data.get("confidence", 1.0))
        if "t" in data:
            t = float(data["t"])
        elif "in" in data:
            t = now + float(data["in"])
        else:
            raise ValueError('expected {"in": seconds} or {"t": media_time}')
    else:
        raise ValueError(f"unexpected payload {text[:60]!r}")
    return _checked(t, now, source, conf)


def _checked(t: float, now: float, source: str, conf: float = 1.0, **kw) -> Boundary:
    if not math.isfinite(t) or t < now - MAX_AHEAD_S or t > now + MAX_AHEAD_S:
        raise ValueError(f"hint time {t} is not within {MAX_AHEAD_S:.0f} s of now ({now:.2f})")
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"confidence must be in 0..1 (got {conf})")
    return Boundary(t=t, kind="hint", source=source, decided_at=now, confidence=conf, **kw)


# ---- MQTT --------------------------------------------------------------------------------------------------

async def mqtt_hints(host: str, port: int, now_media: NowMedia, topic: str = MQTT_TOPIC,
                     username: str | None = None, password: str | None = None,
                     on_error: Callable[[str], None] | None = None,
                     ready: asyncio.Event | None = None) -> AsyncIterator[Boundary]:
    """Hints published on `topic` of an MQTT broker. `ready` is set once subscribed."""
    import aiomqtt

    try:
        async with aiomqtt.Client(host, port=port, username=username, password=password) as client:
            await client.subscribe(topic)
            if ready is not None:
                ready.set()
            async for msg in client.messages:
                try:
                    yield hint_from_payload(msg.payload, now_media(), "mqtt")
                except ValueError as e:
                    _report(on_error, f"mqtt hint on {msg.topic} skipped: {e}")
    except aiomqtt.MqttError as e:
        raise HintError(f"MQTT broker {host}:{port}: {e}") from None


# ---- OSC ---------------------------------------------------------------------------------------------------

async def osc_hints(host: str, port: int, now_media: NowMedia, on_error: Callable[[str], None] | None = None,
                    ready: asyncio.Event | None = None) -> AsyncIterator[Boundary]:
    """Hints sent as OSC messages over UDP to host:port."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import AsyncIOOSCUDPServer

    queue: asyncio.Queue[Boundary] = asyncio.Queue()

    def cut(address: str, *args) -> None:
        try:
            now = now_media()
            if address == OSC_CUT_AT:
                if not args:
                    raise ValueError(f"{OSC_CUT_AT} needs a media time")
                b = _checked(float(args[0]), now, "osc")
            else:
                b = _checked(now + (float(args[0]) if args else 0.0), now, "osc")
            queue.put_nowait(b)
        except (ValueError, TypeError) as e:
            _report(on_error, f"osc hint {address} {args} skipped: {e}")

    disp = Dispatcher()
    disp.map(OSC_CUT, cut)
    disp.map(OSC_CUT_AT, cut)
    server = AsyncIOOSCUDPServer((host, port), disp, asyncio.get_running_loop())
    try:
        transport, _ = await server.create_serve_endpoint()
    except OSError as e:
        raise HintError(f"cannot listen for OSC on {host}:{port}: {e.strerror or e}") from None
    if ready is not None:
        ready.set()
    try:
        while True:
            yield await queue.get()
    finally:
        transport.close()


# ---- OBS (obs-websocket v5) --------------------------------------------------------------------------------

OBS_RPC_VERSION = 1
OBS_EVENTS_TRANSITIONS = 1 << 4  # EventSubscription::Transitions


def obs_auth(password: str, salt: str, challenge: str) -> str:
    """The v5 authentication string: base64(sha256(base64(sha256(password + salt)) + challenge))."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()


async def obs_hints(url: str, now_media: NowMedia, password: str | None = None, delay: float = 0.0,
                    on_error: Callable[[str], None] | None = None,
                    ready: asyncio.Event | None = None) -> AsyncIterator[Boundary]:
    """Scene transitions of OBS as hints. url like ws://127.0.0.1:4455."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    try:
        ws = await connect(url, open_timeout=5)
    except (OSError, InvalidHandshake, InvalidURI, asyncio.TimeoutError) as e:
        raise HintError(f"cannot reach OBS at {url}: {e}") from None
    try:
        await _obs_identify(ws, password)
        duration = await _obs_request_duration(ws)
        if ready is not None:
            ready.set()
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("op") == 7 and msg["d"].get("requestType") == "GetCurrentSceneTransition":
                duration = _duration(msg["d"].get("responseData") or {})  # answer to a re-ask below
                continue
            if msg.get("op") != 5:
                continue
            ev, data = msg["d"].get("eventType"), msg["d"].get("eventData") or {}
            if ev == "CurrentSceneTransitionDurationChanged":
                duration = float(data.get("transitionDuration") or 0) / 1000.0
            elif ev == "CurrentSceneTransitionChanged":  # another transition: ask its duration again
                await ws.send(json.dumps({"op": 6, "d": {"requestType": "GetCurrentSceneTransition",
                                                         "requestId": uuid.uuid4().hex}}))
            elif ev == "SceneTransitionStarted":
                now = now_media()
                t = now + delay
                try:
                    yield _checked(t, now, "obs", start=t, end=t + duration)
                except ValueError as e:
                    _report(on_error, f"obs hint skipped: {e}")
    except ConnectionClosed as e:
        if e.rcvd is not None and e.rcvd.code == 4009:
            raise HintError("OBS refused the password (obs-websocket authentication failed)") from None
        raise HintError(f"OBS at {url} closed the connection ({e.rcvd.code if e.rcvd else 'no close frame'})") from None
    finally:
        await ws.close()


async def _obs_identify(ws, password: str | None) -> None:
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    if hello.get("op") != 0:
        raise HintError("the server at this address does not speak obs-websocket v5 (no Hello)")
    d = {"rpcVersion": OBS_RPC_VERSION, "eventSubscriptions": OBS_EVENTS_TRANSITIONS}
    auth = hello["d"].get("authentication")
    if auth:
        if not password:
            raise HintError("OBS asks for a password (obs-websocket authentication is on); pass one")
        d["authentication"] = obs_auth(password, auth["salt"], auth["challenge"])
    await ws.send(json.dumps({"op": 1, "d": d}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("op") == 2:
            return


async def _obs_request_duration(ws) -> float:
    """Seconds of the current scene transition (0 for a cut or a fixed-length transition)."""
    rid = uuid.uuid4().hex
    await ws.send(json.dumps({"op": 6, "d": {"requestType": "GetCurrentSceneTransition", "requestId": rid}}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("op") == 7 and msg["d"].get("requestId") == rid:
            return _duration(msg["d"].get("responseData") or {})


def _duration(data: dict) -> float:
    if data.get("transitionFixed"):
        return 0.0  # a cut (or a fixed-length stinger OBS will not tell): the switch is the moment
    return float(data.get("transitionDuration") or 0) / 1000.0
