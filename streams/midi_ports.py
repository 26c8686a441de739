"""MIDI ports: which backends and ports there are, finding one by name, and the rtmidi clients that open them.

Shared by the outputs (midi_outputs.py), the MIDI clock input (midi_clock_in.py) and `cuecast ports`.
Probing never starts a JACK server and never prints the backends' complaints about a missing one.
"""

from __future__ import annotations

import contextlib
import os
import sys

CLIENT_NAME = "cuecast"


class PortError(Exception):
    """A port the user named cannot be opened (the engine reports it as a one-line user error)."""


@contextlib.contextmanager
def quiet_stderr():
    """ALSA and JACK print to fd 2 when a backend is absent; probing for ports must not look like errors."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def rtmidi_module():
    """python-rtmidi, or a PortError that says how to install it."""
    try:
        import rtmidi  # noqa: PLC0415
    except ImportError:
        raise PortError("python-rtmidi is not installed: `pip install python-rtmidi`") from None
    return rtmidi


def midi_apis() -> list[int]:
    """The real (not dummy) rtmidi APIs compiled in, system default first."""
    rtmidi = rtmidi_module()
    return [a for a in rtmidi.get_compiled_api() if a != rtmidi.API_RTMIDI_DUMMY]


def api_name(api: int) -> str:
    return rtmidi_module().get_api_display_name(api)


def open_client(kind: str, api: int, name: str = CLIENT_NAME):
    """An rtmidi MidiOut/MidiIn on `api`, or None when that backend is not available right now."""
    rtmidi = rtmidi_module()
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never start a JACK server as a side effect
    cls = rtmidi.MidiOut if kind == "out" else rtmidi.MidiIn
    try:
        with quiet_stderr():
            return cls(api, name)
    except (rtmidi.SystemError, RuntimeError):
        return None


def jack_running() -> bool:
    rtmidi = rtmidi_module()
    if rtmidi.API_UNIX_JACK not in midi_apis():
        return False
    c = open_client("out", rtmidi.API_UNIX_JACK, "cuecast-probe")
    if c is None:
        return False
    c.delete()
    return True


def list_midi_ports() -> dict[str, list[tuple[str, str]]]:
    """{"outputs": [(api, port name)], "inputs": [...]} over every backend available now."""
    out: dict[str, list[tuple[str, str]]] = {"outputs": [], "inputs": []}
    for api in midi_apis():
        for kind, key in (("out", "outputs"), ("in", "inputs")):
            c = open_client(kind, api, "cuecast-probe")
            if c is None:
                continue
            try:
                with quiet_stderr():
                    names = c.get_ports()
                out[key].extend((api_name(api), n) for n in names)
            finally:
                c.delete()
    return out


def match_port(names: list[str], wanted: str) -> int | None:
    """Index of the port named `wanted`: exact name first, then a case-insensitive substring."""
    if wanted in names:
        return names.index(wanted)
    low = wanted.lower()
    hits = [i for i, n in enumerate(names) if low in n.lower()]
    return hits[0] if hits else None


def available_text(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "none"


def release_port(port) -> None:
    """Close and free an rtmidi port; a port whose backend already went away may raise, which is fine here."""
    if port is None:
        return
    try:
        port.close_port()
        port.delete()
    except Exception:
        pass
