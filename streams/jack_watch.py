"""Seeing JACK faults that rtmidi does not report: the server going away, and a port's connections.

rtmidi's port list and sends carry on as if nothing happened when the JACK server dies, and a
`jack_disconnect` leaves both ports in place. A port-less libjack client (through ctypes) sees both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import time

from .midi_ports import quiet_stderr, rtmidi_module


def _libjack():
    """libjack through ctypes: the copy bundled with python-rtmidi's wheel (the one its ports use), else the
    system's. None when there is none."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(rtmidi_module().__file__)))
    for path in sorted(glob.glob(os.path.join(here, "python_rtmidi*", "libjack*.so*"))) + [ctypes.util.find_library("jack")]:
        if path:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
            lib.jack_activate.argtypes = [ctypes.c_void_p]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
            lib.jack_port_by_name.restype = ctypes.c_void_p
            lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
            lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            lib.jack_free.argtypes = [ctypes.c_void_p]
            lib.jack_last_frame_time.restype = ctypes.c_uint32
            lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
            lib.jack_get_buffer_size.restype = ctypes.c_uint32
            lib.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
            return lib
    return None


_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
JACK_NO_START_SERVER = 0x01


class JackWatch:
    """A port-less JACK client that sees what rtmidi does not say: the server going away (rtmidi's port
    list and sends carry on as if nothing happened) and the connections of a port (a `jack_disconnect`
    leaves both ports in place). One per JACK output, in the sender process."""

    def __init__(self, client_name: str):
        self.lib = _libjack()
        self.client = None
        self.gone = False
        self._on_shutdown = _SHUTDOWN(self._shutdown)  # kept: libjack calls it from its own thread
        if self.lib is None:
            return
        status = ctypes.c_int(0)
        with quiet_stderr():
            client = self.lib.jack_client_open(f"{client_name}-watch".encode(), JACK_NO_START_SERVER, ctypes.byref(status))
        if not client:
            return
        self.lib.jack_on_shutdown(client, self._on_shutdown, None)
        if self.lib.jack_activate(client) != 0:
            self.lib.jack_client_close(client)
            return
        self.client = client

    def _shutdown(self, _arg) -> None:
        self.gone = True  # only a flag: libjack forbids calling it from here

    @property
    def usable(self) -> bool:
        return self.client is not None and not self.gone

    def connections(self, port: str) -> list[str] | None:
        """Full names of the ports connected to `port`; None when the port does not exist (or no server)."""
        if not self.usable:
            return None
        handle = self.lib.jack_port_by_name(self.client, port.encode())
        if not handle:
            return None
        names = self.lib.jack_port_get_all_connections(self.client, handle)
        if not names:
            return []
        out, i = [], 0
        while names[i]:
            out.append(names[i].decode(errors="replace"))
            i += 1
        # passed as is (argtypes c_void_p): ctypes.cast would make a reference cycle per call, and the
        # sender runs with the garbage collector off, so every port check would leak a few hundred bytes
        self.lib.jack_free(names)
        return out

    def wait_cycles(self, n: int, timeout: float) -> bool:
        """Wait until the server has started `n` more process cycles (its frame counter moved on n periods), or
        `timeout` seconds. A graph change (a new connection) takes effect at a cycle's start, so after two
        cycles it is in force however long the server's period is and however late its cycles run."""
        if not self.usable:
            return False
        start, period = self.lib.jack_last_frame_time(self.client), max(1, self.lib.jack_get_buffer_size(self.client))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.gone:
            if (self.lib.jack_last_frame_time(self.client) - start) % 2**32 >= n * period:
                return True
            time.sleep(0.001)
        return False

    def close(self) -> None:
        if self.client is not None and not self.gone:
            with quiet_stderr():
                self.lib.jack_client_close(self.client)
        self.client = None
