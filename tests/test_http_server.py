"""The overlay and the WebRTC page start through one helper; a busy port is one clear line for both."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cuecast.streams.bridges.overlay import OverlayServer
from cuecast.streams.webrtc import WebRTCSource
from cuecast.types import SourceError


class NoEvents:
    def subscribe(self, maxsize=0):
        raise AssertionError("nothing connects in this test")


def test_a_busy_port_is_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main():
            with pytest.raises(OSError) as overlay:
                await OverlayServer(NoEvents(), "127.0.0.1", port).start()
            page = WebRTCSource(f"webrtc:127.0.0.1:{port}")
            try:
                with pytest.raises(SourceError) as webrtc:
                    await page.start()
            finally:
                await page.close()
            return str(overlay.value), str(webrtc.value)

        overlay, webrtc = asyncio.run(main())
    assert overlay == f"cannot serve the overlay on 127.0.0.1:{port}: Address already in use"
    assert webrtc == f"webrtc: cannot serve the WebRTC page on 127.0.0.1:{port}: Address already in use"


def test_port_zero_serves_on_the_port_the_os_chose():
    async def main():
        server = await OverlayServer(NoEvents(), "127.0.0.1", 0).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /nothing-here HTTP/1.0\r\n\r\n")
            await writer.drain()
            status = (await reader.readline()).decode()
            writer.close()
            return server.port, status
        finally:
            await server.close()

    port, status = asyncio.run(main())
    assert port > 0 and status.startswith("HTTP/1.") and " 404 " in status
