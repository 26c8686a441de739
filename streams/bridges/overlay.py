"""The overlay: the engine's state as JSON over a WebSocket (`/ws`) and a transparent page (`/overlay`)
showing the mood, the tempo, a beat light and the next cut counting down, made to be added to OBS as a
browser source (width 480, height 200; the page has no background).

`add_routes(app, link)` puts both on an aiohttp application (the WebRTC page's, where it runs);
`serve_overlay(link, host, port)` runs them on their own server otherwise. Bound beyond loopback, a token
is required: the page and the socket then want `?token=...`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time

from cuecast.control import BoundaryEvent, State
from cuecast.streams.http_server import serve

PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>cuecast overlay</title>
<style>
  html, body { margin: 0; background: transparent; overflow: hidden; }
  body { font: 600 18px/1.25 system-ui, -apple-system, "Segoe UI", sans-serif; color: #fff;
         text-shadow: 0 1px 3px rgba(0,0,0,.9); }
  #panel { position: absolute; left: 16px; bottom: 16px; display: flex; gap: 14px; align-items: center;
           padding: 12px 16px; border-radius: 14px; background: rgba(10,12,20,.45); }
  #plane { position: relative; width: 84px; height: 84px; border-radius: 8px; background:
           linear-gradient(90deg, rgba(70,110,255,.35), rgba(255,190,60,.35)); border: 1px solid rgba(255,255,255,.3); }
  #plane:before, #plane:after { content: ""; position: absolute; background: rgba(255,255,255,.25); }
  #plane:before { left: 50%; top: 0; bottom: 0; width: 1px; } #plane:after { top: 50%; left: 0; right: 0; height: 1px; }
  #dot { position: absolute; width: 14px; height: 14px; margin: -7px 0 0 -7px; border-radius: 50%;
         background: #fff; box-shadow: 0 0 10px #fff; left: 50%; top: 50%; transition: left .4s, top .4s; }
  #light { width: 34px; height: 34px; border-radius: 50%; background: #ff3b5c; opacity: .15;
           box-shadow: 0 0 18px #ff3b5c; }
  #light.down { background: #ffd23b; box-shadow: 0 0 22px #ffd23b; }
  .big { font-size: 26px; } .dim { opacity: .75; font-size: 15px; font-weight: 500; }
  #cutbar { height: 5px; border-radius: 3px; background: #fff; width: 0; margin-top: 4px; }
  #status.off { color: #ff8080; }
</style></head>
<body data-state="connecting">
<div id="panel">
  <div id="plane" title="valence (left-right) and arousal (down-up)"><div id="dot"></div></div>
  <div>
    <div class="big"><span id="emotion">…</span></div>
    <div class="dim">valence <span id="valence">–</span> · arousal <span id="arousal">–</span> <span id="held"></span></div>
  </div>
  <div id="light"></div>
  <div>
    <div class="big"><span id="bpm">–</span> <span class="dim">BPM</span></div>
    <div class="dim">bar <span id="barbeat">–</span> <span id="muted"></span></div>
  </div>
  <div style="min-width: 120px">
    <div class="dim">next cut</div>
    <div class="big" id="nextcut">–</div>
    <div id="cutbar"></div>
  </div>
  <div class="dim" id="status">●</div>
</div>
<script>
const EMO = ["anger","disgust","fear","joy","sadness","surprise"];
let st = null, got = 0, ws = null;
const $ = (id) => document.getElementById(id);
const sign = (x) => (x >= 0 ? "+" : "") + x.toFixed(2);
function connect() {
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(proto + location.host + "/ws" + location.search);
  ws.onopen = () => { $("status").className = ""; document.body.dataset.state = "open"; };
  ws.onmessage = (m) => {
    const d = JSON.parse(m.data);
    if (d.type === "state") { st = d; got = performance.now(); draw(); document.body.dataset.state = "live"; }
    if (d.type === "boundary") { flashCut(); }
  };
  ws.onclose = () => { $("status").className = "off"; document.body.dataset.state = "closed"; setTimeout(connect, 1000); };
}
function draw() {
  const p = st.probs || {}; let best = null;
  for (const k of EMO) if (p[k] !== undefined && (best === null || p[k] > p[best])) best = k;
  $("emotion").textContent = best ? best + " " + Math.round(p[best] * 100) + "%" : "listening";
  $("valence").textContent = sign(st.valence); $("arousal").textContent = sign(st.arousal);
  $("dot").style.left = (50 + 50 * st.valence) + "%"; $("dot").style.top = (50 - 50 * st.arousal) + "%";
  $("held").textContent = st.mood_held ? "(held)" : "";
  $("bpm").textContent = st.tempo_bpm ? Math.round(st.tempo_bpm) : "–";
  $("barbeat").textContent = st.bar ? st.bar + "." + st.beat : "–";
  $("muted").textContent = st.muted ? "· muted" : "";
}
function flashCut() { const b = $("cutbar"); b.style.background = "#ffd23b"; setTimeout(() => b.style.background = "#fff", 300); }
function frame() {
  if (st) {
    const dt = (performance.now() - got) / 1000;
    const beats = st.beat_phase + dt * (st.tempo_bpm || 0) / 60;
    const phase = beats - Math.floor(beats);
    const light = $("light");
    light.style.opacity = (0.15 + 0.85 * Math.pow(1 - phase, 3)).toFixed(3);
    light.className = (st.beat === 1 && beats < 1) ? "down" : "";
    if (st.next_boundary_in === null) { $("nextcut").textContent = "–"; $("cutbar").style.width = "0"; }
    else {
      const left = Math.max(0, st.next_boundary_in - dt);
      $("nextcut").textContent = (st.next_boundary === "forecast" ? "~" : "") + left.toFixed(1) + " s";
      $("cutbar").style.width = Math.min(120, 120 * left / 8) + "px";
    }
  }
  requestAnimationFrame(frame);
}
connect(); requestAnimationFrame(frame);
</script></body></html>
"""


def _allowed(request, token: str | None) -> bool:
    if not token:
        return True
    return hmac.compare_digest(request.query.get("token", ""), token)


def add_routes(app, link, token: str | None = None) -> None:
    """Add GET /overlay (the page) and GET /ws (the state stream) to an aiohttp application.

    link: what has subscribe() (an Engine), or a function returning it (None until the engine runs: the
    WebRTC page's server starts before its engine)."""
    from aiohttp import WSMsgType, web

    def engine():
        return link if hasattr(link, "subscribe") else link()

    async def page(request):
        if not _allowed(request, token):
            raise web.HTTPForbidden(text="cuecast overlay: a token is required (?token=...)")
        return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def ws(request):
        if not _allowed(request, token):
            raise web.HTTPForbidden(text="cuecast overlay: a token is required (?token=...)")
        source = engine()
        if source is None:
            raise web.HTTPServiceUnavailable(text="cuecast overlay: the engine is not running yet")
        sock = web.WebSocketResponse(heartbeat=10.0)
        await sock.prepare(request)
        events = source.subscribe(maxsize=64)

        async def drain():  # the page only listens; reading keeps pings answered and sees the close
            async for msg in sock:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
            events.close()

        reader = asyncio.create_task(drain())
        try:
            async for ev in events:
                if isinstance(ev, State):
                    if time.monotonic() - ev.wall > 1.0:
                        continue  # queued behind a slow page: only the present matters
                    await sock.send_str(json.dumps({"type": "state", **ev.to_json()}))
                elif isinstance(ev, BoundaryEvent):
                    await sock.send_str(json.dumps({"type": "boundary", **ev.to_json()}))
        except (ConnectionResetError, RuntimeError):
            pass  # the page went away
        finally:
            events.close()
            reader.cancel()
            await sock.close()
        return sock

    app.router.add_get("/overlay", page)
    app.router.add_get("/ws", ws)


class OverlayServer:
    """The overlay on its own aiohttp server (when no WebRTC page serves it)."""

    def __init__(self, link, host: str, port: int, token: str | None = None):
        self.link, self.host, self.port, self.token = link, host, port, token
        self._runner = None

    async def start(self) -> "OverlayServer":
        from aiohttp import web

        app = web.Application()
        add_routes(app, self.link, self.token)
        self._runner, self.port = await serve(app, self.host, self.port, "the overlay")
        return self

    @property
    def url(self) -> str:
        q = f"?token={self.token}" if self.token else ""
        return f"http://{self.host}:{self.port}/overlay{q}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
