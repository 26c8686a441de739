"""Send a real clip as a live network stream, as an encoder (OBS, ffmpeg -re) does: packets copied from the
file (no re-encode) into an MPEG-TS (udp, srt) or FLV (rtmp) muxer, paced by their timestamps.

    StreamPusher(clip, "udp://127.0.0.1:PORT?pkt_size=1316", "mpegts").start()
    ... .stop()      (cut the stream off mid-way; start another pusher to restore it)

Also a small HTTP file server on 127.0.0.1 (python -m http.server), for pull tests.
"""

from __future__ import annotations

import bisect
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import av


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamPusher:
    """Push `clip` to `url` in real time from a thread; `start_at`/`stop_at` choose a part (media seconds)."""

    def __init__(self, clip: str | Path, url: str, fmt: str, start_at: float = 0.0, stop_at: float | None = None,
                 loop: bool = False, options: dict | None = None, open_timeout: float = 10.0):
        self.clip, self.url, self.fmt = str(clip), url, fmt
        self.start_at, self.stop_at, self.loop = start_at, stop_at, loop
        self.options = options or {}
        self.open_timeout = open_timeout
        self.sent = 0  # video packets sent
        self.sent_at: list[float] = []  # time.time() each video packet went out, in order
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pusher")

    def start(self) -> "StreamPusher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._push()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e

    def _push(self) -> None:
        src = av.open(self.clip)
        out = av.open(self.url, "w", format=self.fmt, options=self.options, timeout=self.open_timeout)
        try:
            ins = [src.streams.video[0]] + list(src.streams.audio[:1])
            outs = {s.index: out.add_stream_from_template(s) for s in ins}
            wall0 = time.monotonic()
            offset = 0.0
            while not self._stop.is_set():
                last = self._one_pass(src, ins, outs, out, wall0, offset)
                if not self.loop or self._stop.is_set():
                    break
                offset = last + 0.04
                src.seek(0)
        finally:
            try:
                out.close()
            finally:
                src.close()

    def _one_pass(self, src, ins, outs, out, wall0: float, offset: float) -> float:
        last = offset
        for packet in src.demux(ins):
            if packet.dts is None or self._stop.is_set():
                if self._stop.is_set():
                    break
                continue
            t = float(packet.pts * packet.time_base) if packet.pts is not None else float(packet.dts * packet.time_base)
            if t < self.start_at:
                continue
            if self.stop_at is not None and t >= self.stop_at:
                break
            media = offset + t - self.start_at
            delay = wall0 + media - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            shift = round((offset - self.start_at) / packet.time_base)
            packet.pts = None if packet.pts is None else packet.pts + shift
            packet.dts = packet.dts + shift
            packet.stream = outs[packet.stream.index]
            out.mux(packet)
            if packet.stream.type == "video":
                self.sent += 1
                self.sent_at.append(time.time())
            last = media
        return last


class HttpServer:
    """`python -m http.server --bind 127.0.0.1` serving a folder, on a free port."""

    def __init__(self, folder: str | Path):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                      "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError("the HTTP server did not start")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not name it
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux: each datagram carries the drops before it


class UdpCapture:
    """Receive datagrams on 127.0.0.1:port from a thread, each with the kernel's arrival time (SO_TIMESTAMPNS,
    time.time()'s clock), so a loaded machine that runs this thread late does not move the times.

    After stop(): save(path) writes the bytes as one file (an MPEG-TS stream to demux), and arrival(pos)
    is when the datagram holding byte `pos` of that file came. `overflowed` counts datagrams the kernel threw
    away because the receive buffer was full (SO_RXQ_OVFL), `rcvbuf` is the buffer the kernel granted: a
    datagram missing from the file with `overflowed` at 0 was never sent."""

    QUIET_S = 0.2  # after stop(): read on until nothing has come for this long

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # capped by net.core.rmem_max
        self.overflowed = 0
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(self.QUIET_S)
        self.chunks: list[bytes] = []
        self.starts: list[int] = []  # byte offset of each datagram
        self.times: list[float] = []
        self._size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="udp-capture")
        self._thread.start()

    def _run(self) -> None:
        # Ends on a quiet socket after stop(), not at once: on a loaded machine this thread runs behind, and
        # the sender's last datagrams (the last pictures) are still queued in the kernel when stop() is called.
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4))
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            t = time.time()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    t = sec + nsec / 1e9
                elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(raw) >= 4:
                    self.overflowed = struct.unpack("I", raw[:4])[0]  # the socket's drop count so far
            self.starts.append(self._size)
            self.times.append(t)
            self.chunks.append(data)
            self._size += len(data)

    def stop(self) -> None:
        """Call once the sender has finished: returns when everything it sent has been read."""
        self._stop.set()
        self._thread.join(10)
        self.sock.close()
        if self._thread.is_alive():
            raise RuntimeError("udp capture: datagrams still coming 10 s after stop()")

    def save(self, path) -> int:
        Path(path).write_bytes(b"".join(self.chunks))
        return self._size

    def arrival(self, pos: int) -> float:
        return self.times[bisect.bisect_right(self.starts, pos) - 1]
