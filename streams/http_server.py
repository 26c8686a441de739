"""Starting an aiohttp application on an address: the WebRTC page and the overlay both serve this way."""

from __future__ import annotations

import os


async def serve(app, host: str, port: int, what: str):
    """Serve `app` (an aiohttp web.Application) on host:port (port 0: the OS picks one).

    Returns (runner, port): runner.cleanup() stops the server; port is the one bound. An address that is
    taken or not this machine's raises OSError with one line that says what could not be served where.
    """
    from aiohttp import web  # noqa: PLC0415 - aiohttp is only needed by the servers

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        why = os.strerror(e.errno) if e.errno else str(e)  # aiohttp's own text repeats the address
        raise OSError(f"cannot serve {what} on {host}:{port}: {why}") from None
    return runner, (runner.addresses[0][1] if port == 0 else port)
