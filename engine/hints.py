"""Cut hints from outside, made fit for the music, and the hint sources named in the config.

The gate between hints and the conductor: a hint for a moment already played is dropped (with a warning);
hints closer than the boundary gap to a known boundary or to another hint are the same event, merged into
it; and at most a few hint boundaries per second get through (a token bucket), so a flood of hints cannot
make more boundaries than the music can mark. Every failure of a hint source is one warning line, and the
source reconnects with back-off (streams/hints.py); a configured source whose extra is missing is refused
at start-up.
"""

from __future__ import annotations

import bisect
import importlib.util
import sys
import threading
import time
from typing import AsyncIterator, Callable, Iterable

from cuecast.engine.config import HintsConfig
from cuecast.engine.errors import UserError
from cuecast.types import Boundary

PAST_TOLERANCE_S = 0.1  # a hint this little in the past still lands (now): the message took time to come
HINT_RATE = 1.0  # hint boundaries per second, on average ...
HINT_BURST = 4  # ... with this many at once


class Warnings:
    """Warnings on stderr, one line each; the same kind again within `every_s` is counted, not printed, and
    the count goes out with the next one of that kind (or at flush())."""

    def __init__(self, stream=None, every_s: float = 5.0, clock=time.monotonic):
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, msg: str, key: str | None = None) -> None:
        key = key or msg
        now = self.clock()
        with self._lock:
            self.count += 1
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                n, _ = self._held.get(key, (0, msg))
                self._held[key] = (n + 1, msg)
                return
            n, _ = self._held.pop(key, (0, msg))
            self._last[key] = now
        self._write(msg + (f" (and {n} more like it before)" if n else ""))

    def flush(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for n, msg in held.values():
            self._write(f"{msg} (and {n - 1} more like it)" if n > 1 else msg)

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        try:
            print(f"cuecast: warning: {line}", file=stream, flush=True)
        except (OSError, ValueError):
            pass


class HintGate:
    """Decides which hints become boundaries (called on the analysis thread)."""

    def __init__(self, gap_s: float, warn: Callable[..., None], rate: float = HINT_RATE, burst: int = HINT_BURST,
                 clock=time.monotonic):
        self.gap = max(0.25, gap_s)
        self.warn = warn
        self.rate, self.burst = rate, burst
        self.clock = clock
        self.tokens = float(burst)
        self._refilled = clock()
        self.accepted: list[float] = []  # media times of hints let through, sorted
        self.dropped = {"past": 0, "merged": 0, "rate": 0}

    def admit(self, b: Boundary, now: float, known: Iterable[float] = ()) -> bool:
        """True when the hint should become a boundary. `now` is the playhead; the hint's own `decided_at` is
        the playhead when it arrived (a hint that waited behind our own work is late, not in the past: the
        conductor lands it as soon as it can)."""
        arrived = now if b.decided_at is None else min(now, b.decided_at)
        if b.t < arrived - PAST_TOLERANCE_S:
            self.dropped["past"] += 1
            self.warn(f"{b.source} hint for media time {b.t:.2f} came {arrived - b.t:.2f} s after it: dropped",
                      key=f"past:{b.source}")
            return False
        b.t = max(b.t, arrived)
        i = bisect.bisect_left(self.accepted, b.t)
        near = any(abs(x - b.t) < self.gap for x in self.accepted[max(0, i - 1):i + 1])
        if near or any(abs(x - b.t) < self.gap for x in known):
            self.dropped["merged"] += 1
            self.warn(f"{b.source} hints within {self.gap:.2f} s of another boundary are merged into it",
                      key=f"merged:{b.source}")
            return False
        wall = self.clock()
        self.tokens = min(self.burst, self.tokens + (wall - self._refilled) * self.rate)
        self._refilled = wall
        if self.tokens < 1.0:
            self.dropped["rate"] += 1
            self.warn(f"{b.source} hints come faster than the music can mark them "
                      f"(at most {self.rate:g}/s, {self.burst} at once): dropped", key=f"rate:{b.source}")
            return False
        self.tokens -= 1.0
        bisect.insort(self.accepted, b.t)
        del self.accepted[:bisect.bisect_left(self.accepted, now - self.gap)]
        return True


def _host_port(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    return host.strip("[]"), int(port)


def require_extra(module: str, what: str, extra: str = "bridges") -> None:
    """A configured feature whose package is missing is a start-up error, never a silent no-op."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{what} needs the {module} package: pip install 'cuecast[{extra}]'")


def hint_sources(cfg: HintsConfig, now_media: Callable[[], float], warn: Callable[..., None] | None = None,
                 token: str = "") -> list[AsyncIterator[Boundary]]:
    """The hint sources the config names (checked now: a missing extra or a listener on a public address
    without a token is a UserError)."""
    from cuecast.streams import hints

    warn = warn or Warnings()
    out = []
    if cfg.mqtt:
        require_extra("aiomqtt", f"hints.mqtt ({cfg.mqtt})")
        host, port = _host_port(cfg.mqtt)
        out.append(_reported(hints.mqtt_hints(host, port, now_media, topic=cfg.mqtt_topic, on_error=warn,
                                              retry=True), "MQTT", warn))
    if cfg.osc:
        require_extra("pythonosc", f"hints.osc ({cfg.osc})", "bridges")
        host, port = _host_port(cfg.osc)
        if not hints.is_loopback(host) and not token:
            raise UserError(f"hints.osc listens on {host}, beyond this machine: set control.token (--token) "
                            "so only senders that know it are heard")
        out.append(_reported(hints.osc_hints(host, port, now_media, on_error=warn,
                                             token=None if hints.is_loopback(host) else token), "OSC", warn))
    if cfg.obs:
        require_extra("websockets", f"hints.obs ({cfg.obs})")
        out.append(_reported(hints.obs_hints(cfg.obs, now_media, password=cfg.obs_password or None,
                                             delay=cfg.obs_delay_s, on_error=warn, retry=True), "OBS", warn))
    return out


async def _reported(source: AsyncIterator[Boundary], name: str, warn) -> AsyncIterator[Boundary]:
    """A source that cannot go on (refused password, port taken) says so in one line; the music goes on."""
    from cuecast.streams.hints import HintError

    try:
        async for b in source:
            yield b
    except HintError as e:
        warn(f"{name} hints stopped: {e}")
