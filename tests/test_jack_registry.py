"""The test JACK server starts even when killed servers have filled JACK's shared registry.

The stale registry is made the way CI makes it: real jackd servers, each SIGKILLed, until no slot is free.
"""

from __future__ import annotations

import subprocess

import pytest
from jack_registry import MAX_SERVERS, SHM_DIR, read_servers
from jack_server import JackServer, RegistryFull, have_jackd

pytestmark = pytest.mark.skipif(not have_jackd(), reason="jackd is not installed (Debian: apt-get install jackd2)")


def _kill_hard(server: JackServer) -> None:
    server.proc.kill()
    server.proc.wait()
    server.stop()  # only puts the environment back: the process is already gone


def _fill_registry_with_killed_servers() -> list[str]:
    killed = []
    while len(read_servers()) < MAX_SERVERS:
        server = JackServer(period=1024, realtime=False)
        try:
            server._start(10.0)
        except RegistryFull:  # a concurrent run took the last slot: full all the same
            break
        _kill_hard(server)
        killed.append(server.name)
    return killed


def test_starts_after_killed_servers_filled_the_registry():
    live = JackServer(period=1024, realtime=False).start()  # a concurrently running server must survive
    try:
        killed = _fill_registry_with_killed_servers()
        names = {name for _, _, name in read_servers()}
        assert set(killed) <= names and live.name in names
        with pytest.raises(RegistryFull):  # the state CI ran into: jackd refuses to start
            JackServer(period=1024, realtime=False)._start(10.0)

        fresh = JackServer(period=1024, realtime=False).start()
        try:
            names = {name for _, _, name in read_servers()}
            assert fresh.name in names and live.name in names
            assert not names & set(killed)
            assert not [p for k in killed for p in SHM_DIR.glob(f"jack*{k}_*")], "socket/futex files of killed servers left"
            ports = subprocess.run(["jack_lsp", "-s", live.name], capture_output=True, text=True,
                                   env={"JACK_NO_START_SERVER": "1", "PATH": "/usr/bin:/bin"})
            assert ports.returncode == 0 and "system:" in ports.stdout, "the live server was disturbed"
        finally:
            fresh.stop()
    finally:
        live.stop()
