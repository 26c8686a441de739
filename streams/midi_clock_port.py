"""The MIDI clock input's port, in a small child process of its own.

rtmidi's JACK input unregisters its port while JACK's process thread may still be reading that port's
buffer (RtMidi's MidiInJack::closePort on an active client): closing the port while a clock plays crashed
the whole process now and then (a segfault in jackProcessIn; here about 1 close in 600). So the port lives
in this child, which never closes it: when its parent closes the pipe it leaves with os._exit, and the JACK
server drops a client whose process has gone. A crash here can end this child, never the engine.

Run as `python -c "from cuecast.streams.midi_clock_port import main; main()" KIND NAME CLIENT_NAME`.
It writes JSON lines to stdout: {"ready": true} or {"error": "one line"} (then exits 1); after that, one line
per poll that took messages, {"w": monotonic time of the poll, "m": [[backend time, [bytes...]], ...]},
where backend time is the sum of the backend's message deltas (taken where the message arrived).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from .midi_ports import PortError, available_text, jack_running, match_port, midi_apis, open_client, rtmidi_module

POLL_S = 0.005


def open_clock_port(kind: str, name: str, client_name: str):
    """An rtmidi input on `kind` (rtmidi, jack or virtual) `name`, clock messages let through."""
    rtmidi = rtmidi_module()
    apis = [rtmidi.API_UNIX_JACK] if kind == "jack" else midi_apis()
    seen: list[str] = []
    for api in apis:
        port = open_client("in", api, client_name)
        if port is None:
            continue
        port.ignore_types(sysex=True, timing=False, active_sense=True)
        if kind == "virtual" or (kind == "jack" and not name):
            try:
                port.open_virtual_port(name or "clock-in")
            except Exception:
                port.delete()  # this backend has no virtual ports (a client without a port closes safely)
                continue
            return port
        names = port.get_ports()
        i = match_port(names, name)
        if i is not None:
            port.open_port(i, "clock-in")
            return port
        seen.extend(names)
        port.delete()
    if kind == "jack" and not seen and not jack_running():
        raise PortError("jack: no JACK server is running for the clock input")
    raise PortError(f"no MIDI input port matches {name!r} for the clock; available: {available_text(seen)}")


def _write(obj) -> None:
    try:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        os._exit(0)  # the parent is gone


def _leave_when_parent_closes() -> None:
    """The parent closes our stdin to stop us (or dies, which closes it too): leave without closing the port."""
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def forward(port) -> None:
    backend_t = 0.0
    while True:
        batch = []
        while (m := port.get_message()) is not None:
            msg, delta = m
            backend_t += delta
            if msg:
                batch.append([backend_t, list(msg)])
        if batch:
            _write({"w": time.monotonic(), "m": batch})
        time.sleep(POLL_S)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us after
    kind, name, client_name = sys.argv[1:4]
    try:
        port = open_clock_port(kind, name, client_name)
    except PortError as e:
        _write({"error": str(e)})
        os._exit(1)
    threading.Thread(target=_leave_when_parent_closes, daemon=True).start()
    _write({"ready": True})
    forward(port)
