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
stop the music. With `retry`, a lost or unreachable broker / OBS is reported in one line and tried again
with back-off (0.5 s doubling to 10 s) for as long as the engine runs; without it, connection failures
raise HintError with a one-line reason. An OSC listener on an address beyond this machine takes only
messages whose first argument is the token.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
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
BACKOFF_S = (0.5, 10.0)  # first and longest wait before reconnecting


class HintError(Exception):
    """A hint source cannot connect or was refused (the engine reports it as a user error)."""


def _report(on_error: Callable[[str], None] | None, msg: str) -> None:
    if on_error is not None:
        on_error(msg)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Backoff:
    """Waits between reconnection attempts: 0.5 s, doubling up to 10 s; reset() after a good connection."""

    def __init__(self, first: float = BACKOFF_S[0], longest: float = BACKOFF_S[1]):
        self.first, self.longest = first, longest
        self.next = first

    def reset(self) -> None:
        self.next = self.first

    async def wait(self) -> float:
        d = self.next
        self.next = min(self.longest, self.next * 2)
        await asyncio.sleep(d)
        return d


def hint_from_payload(payload: bytes | str, now: float, source: str) -> Boundary:
    """Map one message to a boundary in media time; ValueError when it is not a hint."""
    try:
        return _hint_from_payload(payload, now, source)
    except (TypeError, OverflowError, RecursionError) as e:  # e.g. {"in": null}, {"t": [1]}, {"in": 1e999999}
        raise ValueError(f"not a hint ({type(e).__name__}: {e})"[:160]) from None


def _hint_from_payload(payload: bytes | str, now: float, source: str) -> Boundary:
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
                     ready: asyncio.Event | None = None, retry: bool = False) -> AsyncIterator[Boundary]:
    """Hints published on `topic` of an MQTT broker. `ready` is set once subscribed."""
    import aiomqtt

    backoff = Backoff()
    lost = False
    while True:
        try:
            async with aiomqtt.Client(host, port=port, username=username, password=password) as client:
                await client.subscribe(topic)
                if lost:
                    _report(on_error, f"MQTT hints: back on {host}:{port}")
                lost = False
                backoff.reset()
                if ready is not None:
                    ready.set()
                async for msg in client.messages:
                    try:
                        yield hint_from_payload(msg.payload, now_media(), "mqtt")
                    except ValueError as e:
                        _report(on_error, f"mqtt hint on {msg.topic} skipped: {e}")
        except aiomqtt.MqttError as e:
            if not retry:
                raise HintError(f"MQTT broker {host}:{port}: {e}") from None
            lost = True
            _report(on_error, f"MQTT hints: broker {host}:{port}: {e}; retrying in {backoff.next:g} s")
            await backoff.wait()


# ---- OSC ---------------------------------------------------------------------------------------------------

async def osc_hints(host: str, port: int, now_media: NowMedia, on_error: Callable[[str], None] | None = None,
                    ready: asyncio.Event | None = None, token: str | None = None) -> AsyncIterator[Boundary]:
    """Hints sent as OSC messages over UDP to host:port (with a token: its first argument must be it)."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import AsyncIOOSCUDPServer

    queue: asyncio.Queue[Boundary] = asyncio.Queue()

    def cut(address: str, *args) -> None:
        try:
            if token is not None:
                if not args or args[0] != token:
                    raise ValueError("no token or a wrong one")
                args = args[1:]
            now = now_media()
            if address == OSC_CUT_AT:
                if not args:
                    raise ValueError(f"{OSC_CUT_AT} needs a media time")
                b = _checked(float(args[0]), now, "osc")
            else:
                b = _checked(now + (float(args[0]) if args else 0.0), now, "osc")
            queue.put_nowait(b)
        except (ValueError, TypeError, OverflowError) as e:
            _report(on_error, f"osc hint {address} {str(args)[:60]} skipped: {e}")

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
                    ready: asyncio.Event | None = None, retry: bool = False) -> AsyncIterator[Boundary]:
    """Scene transitions of OBS as hints. url like ws://127.0.0.1:4455. A refused password always ends it."""
    backoff = Backoff()
    while True:
        try:
            async for b in _obs_session(url, now_media, password, delay, on_error, ready):
                backoff.reset()
                yield b
            err = HintError(f"OBS at {url} closed the connection")
        except HintError as e:
            if not retry or "password" in str(e):
                raise
            err = e
        if not retry:
            return
        _report(on_error, f"OBS hints: {err}; retrying in {backoff.next:g} s")
        await backoff.wait()


async def _obs_session(url: str, now_media: NowMedia, password: str | None, delay: float,
                       on_error: Callable[[str], None] | None, ready: asyncio.Event | None) -> AsyncIterator[Boundary]:
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
            try:
                msg = json.loads(raw)
                op, d = msg.get("op"), msg.get("d") or {}
                if not isinstance(d, dict):
                    raise ValueError("no data object")
            except (ValueError, TypeError, AttributeError, RecursionError) as e:
                _report(on_error, f"OBS sent a message that is not obs-websocket JSON, skipped: {str(e)[:80]}")
                continue
            if op == 7 and d.get("requestType") == "GetCurrentSceneTransition":
                duration = _duration(d.get("responseData") or {})  # answer to a re-ask below
                continue
            if op != 5:
                continue
            ev, data = d.get("eventType"), d.get("eventData") or {}
            try:
                if ev == "CurrentSceneTransitionDurationChanged":
                    duration = float(data.get("transitionDuration") or 0) / 1000.0
                elif ev == "CurrentSceneTransitionChanged":  # another transition: ask its duration again
                    await ws.send(json.dumps({"op": 6, "d": {"requestType": "GetCurrentSceneTransition",
                                                             "requestId": uuid.uuid4().hex}}))
                elif ev == "SceneTransitionStarted":
                    now = now_media()
                    t = now + delay
                    yield _checked(t, now, "obs", start=t, end=t + duration)
            except (ValueError, TypeError, AttributeError, OverflowError) as e:
                _report(on_error, f"obs event {str(ev)[:40]} skipped: {e}")
    except ConnectionClosed as e:
        if e.rcvd is not None and e.rcvd.code == 4009:
            raise HintError("OBS refused the password (obs-websocket authentication failed)") from None
        raise HintError(f"OBS at {url} closed the connection ({e.rcvd.code if e.rcvd else 'no close frame'})") from None
    except (OSError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as e:
        raise HintError(f"OBS at {url}: {type(e).__name__}: {e}"[:200]) from None
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
    if not isinstance(data, dict) or data.get("transitionFixed"):
        return 0.0  # a cut (or a fixed-length stinger OBS will not tell): the switch is the moment
    try:
        return min(60.0, max(0.0, float(data.get("transitionDuration") or 0) / 1000.0))
    except (TypeError, ValueError, OverflowError):
        return 0.0
