"""A browser as the source: `webrtc[:HOST:PORT]` serves a page that sends a camera, a screen share or a video
file (with its audio) to the engine over WebRTC (aiortc + aiohttp), and plays the soundtrack back to the
browser as an audio track, so one page is a complete demo.

The server binds 127.0.0.1 by default. Bound to any other address it asks every request for a token (given,
or generated and printed), since whoever can reach the page could otherwise feed the engine. The first
browser is the source; later ones get a clear refusal until it leaves (one stream per engine for now). When
the browser goes away the music carries on from the engine's clock, and a browser that connects again
continues the same stream (media time follows the wall clock across the gap, as for network streams).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import sys
import time
from fractions import Fraction
from importlib import resources
from typing import AsyncIterator, Callable
from urllib.parse import parse_qsl

import av
import numpy as np

from cuecast.types import AudioChunk, EKMAN6, EndOfStream, Frame, InputSound, Note, SourceError, SourceInfo

from .http_server import serve
from .network import STALL_S, _Timestamps
from .sources import ItemQueue
from .video import AUDIO_RATE, _AudioBlocks, analysis_size

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
PAGE = "webrtc_page"
SOUNDTRACK_RATE = 48000  # what WebRTC's Opus runs at
SOUNDTRACK_BLOCK = 960  # 20 ms: one Opus frame


def parse_spec(spec: str) -> tuple[str, int, str]:
    """`webrtc`, `webrtc:PORT`, `webrtc:HOST:PORT`, `webrtc:[::1]:PORT`, each with an optional `?token=T`
    -> (host, port, token)."""
    rest = spec.partition(":")[2] if ":" in spec else ""
    rest, _, query = rest.partition("?")
    token = dict(parse_qsl(query)).get("token", "")
    host, port = DEFAULT_HOST, DEFAULT_PORT
    if rest:
        if rest.startswith("["):
            host, _, p = rest[1:].partition("]")
            p = p.lstrip(":")
        elif rest.count(":") == 1:
            host, p = rest.split(":")
        elif rest.isdigit():
            p = rest
        else:
            host, p = rest, ""
        try:
            port = int(p) if p else DEFAULT_PORT
        except ValueError:
            raise SourceError(f"{spec}: the port must be a number (webrtc:HOST:PORT, e.g. webrtc:127.0.0.1:8080)") from None
        if not 0 <= port <= 65535:
            raise SourceError(f"{spec}: port {port} is out of range")
    return host or DEFAULT_HOST, port, token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page_file(name: str) -> bytes:
    return resources.files("cuecast.streams").joinpath(PAGE, name).read_bytes()


class SoundtrackSink:
    """The soundtrack for the browser: the engine's notes (beside the MIDI sender) rendered by the streaming
    synth in media time, 20 ms at a time as the playhead reaches them; an aiortc audio track hands the blocks
    on. media_now() is the clock's media time being played right now, so the browser hears what the MIDI
    outputs play at the same moment."""

    def __init__(self, media_now: Callable[[], float], channels: dict, soundfont: str = "", gain: float = 0.5):
        from .audio_render import AudioRenderError, StreamingSynth, SynthUnavailable  # noqa: PLC0415

        self.media_now = media_now
        self.error = ""
        self.synth = None
        try:
            self.synth = StreamingSynth(channels, SOUNDTRACK_RATE, soundfont, gain)
        except (SynthUnavailable, AudioRenderError) as e:
            self.error = f"no soundtrack audio for the browser: {e}"

    @property
    def fs(self):
        return self.synth

    # ---- NoteSink (the engine's analysis thread) ----
    def tempo(self, t: float, bpm: float, beat: float) -> None:
        pass

    def notes(self, notes: list[Note]) -> None:
        if self.synth is not None:
            self.synth.notes(notes)

    def cut_at(self, t: float) -> None:
        if self.synth is not None:
            self.synth.cut_at(t)

    def close(self) -> None:
        if self.synth is not None:
            self.synth.cut_at(self.media_now())  # what sounds ends; the track plays on in silence

    # ---- rendering (the event loop) ----
    def render(self, frames: int) -> np.ndarray:
        """The next `frames` stereo int16 samples, at the media time being played now."""
        synth = self.synth
        if synth is None:
            return np.zeros((frames, 2), np.int16)
        now = int(self.media_now() * SOUNDTRACK_RATE)
        if now - synth.pos > 5 * frames:  # joined late or fell behind (a busy loop): catch up with the playhead
            synth.render(now - synth.pos)
        block = synth.render(frames)
        return np.round(block * 32767.0).astype(np.int16)

    def delete(self) -> None:
        if self.synth is not None:
            self.synth.release()
            self.synth = None


def soundtrack_track(sink: SoundtrackSink):
    """An aiortc audio track playing `sink` in real time (20 ms frames, paced by the wall clock)."""
    from aiortc import MediaStreamTrack  # noqa: PLC0415

    class SoundtrackTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self):
            super().__init__()
            self._start: float | None = None
            self._sent = 0
            self.peak = 0.0

        async def recv(self) -> av.AudioFrame:
            if self.readyState != "live":
                from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

                raise MediaStreamError
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + self._sent / SOUNDTRACK_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            block = sink.render(SOUNDTRACK_BLOCK)
            if block.size:
                self.peak = max(self.peak, float(np.abs(block).max()) / 32768.0)
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate = SOUNDTRACK_RATE
            frame.pts = self._sent
            frame.time_base = Fraction(1, SOUNDTRACK_RATE)
            self._sent += SOUNDTRACK_BLOCK
            return frame

    return SoundtrackTrack()


class WebRTCSource:
    """The Source a browser feeds (see the module docstring). The web server starts with the first recv()
    (the engine is then ready to take frames) and stops with close()."""

    def __init__(self, spec: str, analysis_width: int = 320, audio: bool = True, queue_frames: int = 32,
                 keep_picture: bool = False, token: str = "", announce: Callable[[str], None] | None = None):
        self.host, self.port, spec_token = parse_spec(spec)
        self.token = token or spec_token
        if not self.token and not is_loopback(self.host):
            self.token = secrets.token_urlsafe(12)  # reachable from the network: never without a token
        self.info = SourceInfo(kind="webrtc", name=spec, live=True)
        self.analysis_width = analysis_width
        self.audio = audio
        self.keep_picture = keep_picture
        self.announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))
        self._queue = ItemQueue(queue_frames, live=True)
        self._clock = _Timestamps(live=True)
        self._blocks = _AudioBlocks()
        self._resampler = None
        self._index = 0
        self._peer = None  # the browser that is the source
        self._peers: set = set()
        self._runner = None
        self._closed = False
        self._started = False
        self._tasks: set[asyncio.Task] = set()
        self.soundtrack: SoundtrackSink | None = None
        self.engine = None  # set by watch(); the page's status display reads its state
        self.peer_report: dict = {}  # what the page says it receives (the soundtrack), for timeline.json
        self.refused = 0
        self.sessions = 0

    # ---- hooks for the live player ----
    def soundtrack_sink(self, media_now: Callable[[], float], channels: dict[str, tuple], soundfont: str = "",
                        gain: float = 0.5) -> SoundtrackSink:
        """The NoteSink whose notes come back to the browser as audio."""
        self.soundtrack = SoundtrackSink(media_now, channels, soundfont, gain)
        return self.soundtrack

    def watch(self, engine) -> None:
        self.engine = engine

    def tap(self, fn: Callable[[Frame | AudioChunk], None]) -> None:
        """Call fn(item) for every picture and sound block (on the event loop) before the live queue may drop
        it: --video-out writes every picture however slow the analysis is. fn must not block."""
        self._queue.tap = fn

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def stalled_since(self) -> float | None:
        """time.monotonic() since which no picture has come (the browser left or froze), or None."""
        last = self._clock.last
        return last[1] if last is not None and time.monotonic() - last[1] > STALL_S else None

    def meta(self) -> dict:
        """What timeline.json records about the stream: frames taken, browsers served and refused, and what
        the page said it received of the soundtrack."""
        return {"kind": "webrtc", "url": self.url.split("?")[0], "frames": self._index, "dropped": self.dropped,
                "sessions": self.sessions, "refused": self.refused, "size": [self.info.width, self.info.height],
                "peer": dict(self.peer_report)}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    # ---- Source ----
    async def recv(self) -> Frame | AudioChunk:
        if self._closed:
            raise EndOfStream
        if not self._started:
            await self.start()
        item = await self._queue.get()
        if item is None:
            raise EndOfStream
        return item

    async def __aiter__(self) -> AsyncIterator[Frame | AudioChunk]:
        while True:
            try:
                yield await self.recv()
            except EndOfStream:
                return

    async def start(self) -> None:
        """Serve the page; SourceError when the address cannot be bound."""
        from aiohttp import web  # noqa: PLC0415

        self._started = True
        self._queue.bind(asyncio.get_running_loop())
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/page.js", self._page)
        app.router.add_post("/offer", self._offer)
        app.router.add_get("/status", self._status)
        app.router.add_post("/report", self._report)
        _add_overlay(app, self)
        try:
            self._runner, self.port = await serve(app, self.host, self.port, "the WebRTC page")
        except OSError as e:
            raise SourceError(f"webrtc: {e}") from None
        self.announce(f"cuecast: webrtc: open {self.url} in a browser to send a camera, a screen or a file"
                      + ("" if is_loopback(self.host) else " (the token keeps others out: share it only with the sender)"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._queue.offer(None)
        for pc in list(self._peers):
            await pc.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.soundtrack is not None:
            self.soundtrack.delete()

    # ---- web handlers ----
    def _allowed(self, request) -> bool:
        if not self.token:
            return True
        given = request.query.get("token", "") or request.headers.get("X-Cuecast-Token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _forbidden(self):
        from aiohttp import web  # noqa: PLC0415

        return web.json_response({"error": "this cuecast needs its token: open the URL it printed "
                                           "(…/?token=…)"}, status=403)

    async def _page(self, request):
        from aiohttp import web  # noqa: PLC0415

        if not self._allowed(request):
            return web.Response(status=403, text="cuecast: this page needs its token: open the URL cuecast printed")
        name = "page.js" if request.path.endswith(".js") else "index.html"
        kind = "application/javascript" if name.endswith(".js") else "text/html"
        return web.Response(body=_page_file(name), content_type=kind, charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _offer(self, request):
        from aiohttp import web  # noqa: PLC0415
        from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: PLC0415

        if not self._allowed(request):
            return self._forbidden()
        if self._peer is not None or self._closed:
            self.refused += 1
            return web.json_response({"error": "another browser is already the source of this cuecast; "
                                               "only one sends at a time (close it, or start another cuecast)"},
                                     status=409)
        try:
            body = await request.json()
            offer = RTCSessionDescription(sdp=str(body["sdp"]), type=str(body["type"]))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected a JSON offer {sdp, type}"}, status=400)
        pc = RTCPeerConnection()
        self._peer = pc
        self._peers.add(pc)
        self.sessions += 1
        self._clock.restart()

        @pc.on("track")
        def on_track(track):
            self._spawn(self._take_video(track) if track.kind == "video" else self._take_audio(track))

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                await self._drop(pc)

        try:
            await pc.setRemoteDescription(offer)
            if self.soundtrack is not None and any(t.kind == "audio" for t in pc.getTransceivers()):
                pc.addTrack(soundtrack_track(self.soundtrack))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # noqa: BLE001 - a malformed offer is the browser's problem, not ours
            await self._drop(pc)
            return web.json_response({"error": f"cannot answer this offer: {e}"}, status=400)
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                                  "soundtrack": self.soundtrack is not None and self.soundtrack.fs is not None,
                                  "soundtrack_error": self.soundtrack.error if self.soundtrack else ""})

    async def _drop(self, pc) -> None:
        self._peers.discard(pc)
        if self._peer is pc:
            self._peer = None
        await pc.close()

    async def _status(self, request):
        from aiohttp import web  # noqa: PLC0415

        if not self._allowed(request):
            return self._forbidden()
        return web.json_response(self.status())

    async def _report(self, request):
        from aiohttp import web  # noqa: PLC0415

        if not self._allowed(request):
            return self._forbidden()
        try:
            body = await request.json()
            self.peer_report = {k: float(v) for k, v in body.items() if isinstance(v, (int, float))}
        except (ValueError, AttributeError):
            return web.json_response({"error": "expected JSON numbers"}, status=400)
        return web.json_response({"ok": True})

    def status(self) -> dict:
        """What the page shows: the engine's emotion, tempo and next boundary, and the stream's health."""
        out = {"connected": self._peer is not None, "frames": self._index, "dropped": self.dropped,
               "width": self.info.width, "height": self.info.height, "peer": dict(self.peer_report)}
        engine = self.engine
        if engine is None:
            return out
        st = engine.state
        probs = list(getattr(st, "probs", ()) or ())
        top = EKMAN6[int(np.argmax(probs))] if len(probs) == len(EKMAN6) else ""
        neutral = float(getattr(st, "neutral", 0.0))
        if top and neutral >= 0.5:
            top = "neutral"  # most of the window reads as no emotion in particular
        nxt = st.next_boundary
        out.update({"emotion": top, "probs": dict(zip(EKMAN6, [round(float(p), 3) for p in probs])),
                    "neutral": round(neutral, 3), "valence": round(float(st.valence), 3), "arousal": round(float(st.arousal), 3),
                    "tempo": round(float(st.tempo), 1), "bar": int(st.bar) + 1, "beat": int(st.beat_in_bar) + 1,
                    "t_play": round(float(st.t_play), 2),
                    "next_boundary_in": None if nxt is None else round(max(0.0, nxt - st.t_play), 2),
                    "next_boundary_known": bool(st.next_boundary_known), "boundaries": int(st.boundaries)})
        return out

    # ---- media from the browser ----
    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_video(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            wall = time.monotonic()
            if frame.pts is None or frame.time_base is None:
                continue
            self.info.width, self.info.height = frame.width, frame.height
            t = self._clock.video(float(frame.pts * frame.time_base), wall, 1 / 30)
            w, h = analysis_size(frame.width, frame.height, self.analysis_width)
            image = frame.to_ndarray(width=w, height=h, format="rgb24")
            self._queue.push(Frame(t=t, index=self._index, image=image, source_size=(frame.width, frame.height),
                                    picture=frame if self.keep_picture else None, arrived=wall))
            self._index += 1

    async def _take_audio(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not self.audio or self._clock.last is None:
                continue  # media time starts with the first picture
            self.info.has_audio = True
            # WebRTC gives audio its own RTP clock: place it by arrival, next to the pictures
            last_t, last_wall = self._clock.last
            t = last_t + time.monotonic() - last_wall - frame.samples / frame.sample_rate
            if self.keep_picture and t >= 0:
                self._queue.push(InputSound(t, frame))  # for --video-out, at its own rate and channels
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                if samples.size and t >= 0:
                    for chunk in self._blocks.add([AudioChunk(t=t, samples=samples, rate=AUDIO_RATE)]):
                        self._queue.push(chunk)


def _add_overlay(app, source: WebRTCSource) -> None:
    """The overlay and its WebSocket (/overlay, /ws) on the same server, when that module is there."""
    try:
        from cuecast.streams.bridges import overlay  # noqa: PLC0415
    except ImportError:
        return
    overlay.add_routes(app, lambda: source.engine, token=source.token)


def open_webrtc(spec: str, cfg, *, realtime: bool, keep_picture: bool = False, loop: bool = False, **_) -> WebRTCSource:
    if not realtime:
        raise SourceError(f"{spec} is a live source: use `cuecast live --source {spec}` (render needs a file or URL)")
    return WebRTCSource(spec, cfg.analysis_width, audio=cfg.audio, queue_frames=cfg.queue_frames,
                        keep_picture=keep_picture)

