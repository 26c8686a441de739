"""MIDI outputs for live play: existing ports, virtual ports, JACK ports, a software synth, or nothing.

An output is described by a spec string (`rtmidi:NAME`, `virtual:NAME`, `jack:NAME`, `synth`, `none`) and
opened inside the sender process (engine/scheduler.py). Every output can say whether its port is still
there (`alive`) and open it again when it comes back (`reopen`), so a synth that is unplugged and plugged
in again does not stop the show.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import math
import os
import sys
import time
from dataclasses import dataclass

from cuecast.midi import Status

KINDS = ("rtmidi", "virtual", "jack", "synth", "none")
CLIENT_NAME = "cuecast"


class PortError(Exception):
    """A port the user named cannot be opened (the engine reports it as a one-line user error)."""


@dataclass(frozen=True)
class OutputSpec:
    kind: str  # one of KINDS
    name: str  # port name or substring; "" when the kind needs none
    text: str  # the spec as the user wrote it (the key for per-output latency in the config)


def parse_output_spec(text: str) -> OutputSpec:
    """`rtmidi:NAME`, `virtual:NAME`, `jack:NAME` (NAME optional), `synth` (or `synth:SOUNDFONT.sf2`), `none`."""
    kind, _, name = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise PortError(f"unknown MIDI output {text!r}: use rtmidi:NAME, virtual:NAME, jack:NAME, synth or none")
    if kind == "rtmidi" and not name:
        raise PortError("rtmidi: needs a port name (or part of one), e.g. rtmidi:Synth; `cuecast ports` lists them")
    if kind == "none" and name:
        raise PortError(f"`none` takes no name (got {text!r})")
    return OutputSpec(kind, name, text)


# ---- rtmidi helpers ------------------------------------------------------------------------------


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


def _rtmidi():
    try:
        import rtmidi  # noqa: PLC0415
    except ImportError:
        raise PortError("python-rtmidi is not installed: `pip install python-rtmidi`") from None
    return rtmidi


def _apis() -> list[int]:
    """The real (not dummy) rtmidi APIs compiled in, system default first."""
    rtmidi = _rtmidi()
    return [a for a in rtmidi.get_compiled_api() if a != rtmidi.API_RTMIDI_DUMMY]


def api_name(api: int) -> str:
    return _rtmidi().get_api_display_name(api)


def _client(kind: str, api: int, name: str = CLIENT_NAME):
    """An rtmidi MidiOut/MidiIn on `api`, or None when that backend is not available right now."""
    rtmidi = _rtmidi()
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never start a JACK server as a side effect
    cls = rtmidi.MidiOut if kind == "out" else rtmidi.MidiIn
    try:
        with quiet_stderr():
            return cls(api, name)
    except (rtmidi.SystemError, RuntimeError):
        return None


def jack_running() -> bool:
    rtmidi = _rtmidi()
    if rtmidi.API_UNIX_JACK not in _apis():
        return False
    c = _client("out", rtmidi.API_UNIX_JACK, "cuecast-probe")
    if c is None:
        return False
    c.delete()
    return True


def list_midi_ports() -> dict[str, list[tuple[str, str]]]:
    """{"outputs": [(api, port name)], "inputs": [...]} over every backend available now."""
    out: dict[str, list[tuple[str, str]]] = {"outputs": [], "inputs": []}
    for api in _apis():
        for kind, key in (("out", "outputs"), ("in", "inputs")):
            c = _client(kind, api, "cuecast-probe")
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


def _available_text(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "none"


# ---- seeing JACK faults ------------------------------------------------------------------------------


def _libjack():
    """libjack through ctypes: the copy bundled with python-rtmidi's wheel (the one its ports use), else the
    system's. None when there is none."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(_rtmidi().__file__)))
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

    def close(self) -> None:
        if self.client is not None and not self.gone:
            with quiet_stderr():
                self.lib.jack_client_close(self.client)
        self.client = None


# ---- outputs ---------------------------------------------------------------------------------------


class MidiOutput:
    """An output that takes raw MIDI bytes. Subclasses open a real port; this one sends nowhere (`none`)."""

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self.ok = False  # the port is open and (as far as we know) there

    @property
    def label(self) -> str:
        return self.spec.text

    def open(self) -> None:
        self.ok = True

    def send(self, msg: bytes | list[int]) -> bool:
        return self.ok

    def alive(self) -> bool:
        """Is the port still there? (Checked a few times a second by the sender.)"""
        return True

    def reopen(self) -> bool:
        """Try to open the port again after it went away; True when it is back."""
        return True

    def close(self) -> None:
        self.ok = False


class RtMidiOutput(MidiOutput):
    """rtmidi:NAME (an existing port on any backend), jack:NAME (a JACK port) and virtual:NAME."""

    def __init__(self, spec: OutputSpec, client_name: str = CLIENT_NAME):
        super().__init__(spec)
        self.client_name = client_name
        self.port = None  # rtmidi.MidiOut
        self.api: int | None = None
        self.target = ""  # the full name of the port we connect to ("" for an unconnected port)
        self.watch: JackWatch | None = None  # jack: sees the server and the connection
        self.own = ""  # jack: the full name of our own port, once known
        self.fault = ""  # why the port is lost, for the user ("" while it is fine)
        self.fault_kind = "port"  # "port" (gone), "connection" (removed), "server" (the JACK server went away)

    def open(self) -> None:
        rtmidi = _rtmidi()
        kind, name = self.spec.kind, self.spec.name
        if kind == "virtual":
            self._open_virtual(name or self.client_name)
        elif kind == "jack":
            if rtmidi.API_UNIX_JACK not in _apis():
                raise PortError("this python-rtmidi has no JACK support; use rtmidi:NAME or virtual:NAME")
            port = _client("out", rtmidi.API_UNIX_JACK, self.client_name)
            if port is None:
                raise PortError("jack: no JACK server is running (start one, e.g. `jackd -d dummy`, or use rtmidi:NAME)")
            self.port, self.api = port, rtmidi.API_UNIX_JACK
            if name:
                names = port.get_ports()
                i = match_port(names, name)
                if i is None:
                    port.delete()
                    raise PortError(f"no JACK MIDI input port matches {name!r}; available: {_available_text(names)}")
                self.target = names[i]
                self.watch = JackWatch(self.client_name)
                self._connect_jack(port, i)
            else:
                port.open_virtual_port("out")
        else:  # rtmidi: search every backend for a matching port
            seen: list[str] = []
            for api in _apis():
                port = _client("out", api, self.client_name)
                if port is None:
                    continue
                names = port.get_ports()
                i = match_port(names, name)
                if i is not None:
                    self.port, self.api, self.target = port, api, names[i]
                    port.open_port(i, self.client_name)
                    break
                seen.extend(names)
                port.delete()
            else:
                raise PortError(f"no MIDI output port matches {name!r}; available: {_available_text(seen)}"
                                " (`cuecast ports` lists them)")
        self.ok = True

    def _connect_jack(self, port, index: int) -> None:
        """Open our port connected to the target, then wait until JACK has the connection in its graph:
        messages sent in the cycle before it takes effect are lost (start-up program changes were)."""
        before = set(self.watch.connections(self.target) or [])
        port.open_port(index, "out")
        deadline = time.monotonic() + 1.0
        while self.watch.usable and time.monotonic() < deadline:
            new = set(self.watch.connections(self.target) or []) - before
            if new:
                self.own = sorted(new)[0]
                break
            time.sleep(0.005)
        time.sleep(0.02)  # a few JACK periods: the graph change is applied at a cycle boundary

    def _open_virtual(self, name: str) -> None:
        if sys.platform == "win32":
            raise PortError("Windows MIDI has no virtual ports: install loopMIDI (tobias-erichsen.de), create a port "
                            "there, and use rtmidi:NAME with that port's name")
        for api in _apis():
            port = _client("out", api, self.client_name)
            if port is None:
                continue
            try:
                port.open_virtual_port(name)
            except Exception:  # this backend has no virtual ports: try the next
                port.delete()
                continue
            self.port, self.api = port, api
            return
        raise PortError("no MIDI backend can make a virtual port here (Linux needs the ALSA sequencer, "
                        "/dev/snd/seq, or a running JACK server)")

    def send(self, msg: bytes | list[int]) -> bool:
        if not self.ok or self.port is None:
            return False
        try:
            self.port.send_message(msg)
            return True
        except Exception:  # a port that vanished between checks: fail quietly, the checker notices
            return False

    def alive(self) -> bool:
        if self.watch is not None and self.watch.client is not None:
            return self._jack_alive()
        if not self.target or self.port is None:
            return self.port is not None
        try:
            return self.target in self.port.get_ports()
        except Exception:
            return False

    def _jack_alive(self) -> bool:
        if self.watch.gone:
            self.fault, self.fault_kind = "the JACK server went away", "server"
            return False
        conns = self.watch.connections(self.target)
        if conns is None:
            self.fault, self.fault_kind = f"the JACK port {self.target} went away", "port"
            return False
        if self.own and self.own not in conns:
            self.fault, self.fault_kind = f"the connection to {self.target} was removed", "connection"
            return False
        self.fault = ""
        return True

    @property
    def server_gone(self) -> bool:
        return self.watch is not None and self.watch.gone

    def reopen(self) -> bool:
        if self.port is None or self.server_gone:
            return False
        if self.watch is not None and self.watch.usable:
            return self._jack_reopen()
        try:
            names = self.port.get_ports()
            if self.target not in names:
                return False
            self.port.close_port()
            self.port.open_port(names.index(self.target), "out" if self.spec.kind == "jack" else self.client_name)
            self.ok = True
            return True
        except Exception:
            return False

    def _jack_reopen(self) -> bool:
        """Back when the user connects us again; when the target port itself went and came back (a synth
        restarted), we connect to it again. A connection the user removed is not forced back."""
        conns = self.watch.connections(self.target)
        if conns is None:
            return False  # the target is still away
        if self.own and self.own in conns:
            self.fault = ""
            self.ok = True
            return True
        if self.fault_kind == "connection":
            return False  # the user removed it: theirs to restore
        try:
            names = self.port.get_ports()
            if self.target not in names:
                return False
            self.port.close_port()
            self._connect_jack(self.port, names.index(self.target))
        except Exception:
            return False
        self.fault = ""
        self.ok = True
        return True

    def close(self) -> None:
        self.ok = False
        if self.server_gone:
            self.port = None  # its client is dead: closing it would only print JACK's complaints
        else:
            _release(self.port)
            self.port = None
        if self.watch is not None:
            self.watch.close()
            self.watch = None


def open_output(spec: OutputSpec | str, client_name: str = CLIENT_NAME, **synth_options) -> MidiOutput:
    """Build and open the output for a spec; raises PortError with a one-line reason."""
    if isinstance(spec, str):
        spec = parse_output_spec(spec)
    if spec.kind == "none":
        out: MidiOutput = MidiOutput(spec)
    elif spec.kind == "synth":
        from cuecast.streams.synth_live import SynthOutput  # noqa: PLC0415 - only when asked for

        out = SynthOutput(spec, **synth_options)
    else:
        out = RtMidiOutput(spec, client_name)
    out.open()
    return out


# ---- following an external MIDI clock ----------------------------------------------------------------


class MidiClockIn:
    """Follows the tempo of an external MIDI clock (24 ppqn) on `rtmidi:NAME`, `jack:NAME` or `virtual:NAME`.

    Receive times come from the MIDI backend's own timestamps (taken where the message arrives, not when
    Python gets round to it); the tempo is a least-squares fit over the last two beats of ticks, so one
    late tick moves it little. `bpm` is None until a beat of ticks has arrived, and again when the clock
    stops (Stop, or no tick for half a second).

    It keeps the master's song position too: Start counts from zero, Song Position Pointer and Continue from
    there, Stop pauses (`running`); `grid_at(wall)` gives the master's next beat after a monotonic wall time,
    with its index from the song start, so the music can stay on the master's grid. Backend timestamps are
    put on the monotonic clock by the earliest poll that saw them (the poll runs every 10 ms).
    """

    WINDOW = 48  # ticks in the tempo fit: two beats
    GRID_WINDOW = 96  # ticks in the grid's fit: four beats (steadier phase; the tempo of a master is steady)
    OFFSET_POLLS = 3000  # polls (30 s) whose earliest look at the messages places backend time on the clock

    def __init__(self, spec: OutputSpec | str, client_name: str = CLIENT_NAME + "-clock"):
        if isinstance(spec, str):
            spec = parse_output_spec(spec)
        if spec.kind not in ("rtmidi", "jack", "virtual"):
            raise PortError(f"a MIDI clock comes in on rtmidi:NAME, jack:NAME or virtual:NAME (got {spec.text!r})")
        self.spec = spec
        self.port = None
        self._t = 0.0  # backend time of the last message (sum of its deltas)
        self._ticks: list[float] = []
        self._positions: list[int] = []  # the song position (in ticks) of each tick in _ticks
        self._next_pos: int | None = None  # position of the next tick, once Start or a song position said it
        self._offsets: list[float] = []  # monotonic - backend time, per poll that took messages
        self._last_wall = 0.0
        self.running: bool | None = None  # None: no Start/Stop seen yet (a clock already running counts as running)
        self._open(client_name)
        import threading  # noqa: PLC0415
        import time  # noqa: PLC0415

        self._time = time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="cuecast-clock-in", daemon=True)
        self._thread.start()

    def _open(self, client_name: str) -> None:
        rtmidi = _rtmidi()
        kind, name = self.spec.kind, self.spec.name
        apis = [rtmidi.API_UNIX_JACK] if kind == "jack" else _apis()
        seen: list[str] = []
        for api in apis:
            port = _client("in", api, client_name)
            if port is None:
                continue
            port.ignore_types(sysex=True, timing=False, active_sense=True)
            if kind == "virtual" or (kind == "jack" and not name):
                try:
                    port.open_virtual_port(name or "clock-in")
                except Exception:
                    port.delete()
                    continue
                self.port = port
                return
            names = port.get_ports()
            i = match_port(names, name)
            if i is not None:
                port.open_port(i, "clock-in")
                self.port = port
                return
            seen.extend(names)
            port.delete()
        if kind == "jack" and not seen and not jack_running():
            raise PortError("jack: no JACK server is running for the clock input")
        raise PortError(f"no MIDI input port matches {name!r} for the clock; available: {_available_text(seen)}")

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(0.01)

    def _take(self) -> None:
        took = False
        while self.port is not None:
            m = self.port.get_message()
            if m is None:
                break
            msg, delta = m
            self._t += delta
            took = True
            if not msg:
                continue
            if msg[0] == Status.CLOCK:
                if self._next_pos is None:
                    self._next_pos = 0  # joined a running clock: count from here
                if self.running is None:
                    self.running = True  # ticks without a Start seen (it went out before we connected): running
                self._ticks.append(self._t)
                self._positions.append(self._next_pos)
                del self._ticks[:-self.GRID_WINDOW], self._positions[:-self.GRID_WINDOW]
                self._next_pos += 1
                self._last_wall = self._time.monotonic()
            elif msg[0] == Status.START:  # Start: the next tick is the song's first
                self.running, self._next_pos = True, 0
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.CONTINUE:  # Continue: from the song position last given (or where it stopped)
                self.running = True
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.STOP:
                self.running = False
                self._ticks.clear(), self._positions.clear()
            elif msg[0] == Status.SONG_POSITION and len(msg) >= 3:  # Song Position Pointer, in sixteenths (6 ticks each)
                self._next_pos = 6 * ((msg[1] & 0x7F) | (msg[2] & 0x7F) << 7)
        if took:
            self._offsets.append(self._time.monotonic() - self._t)
            del self._offsets[:-self.OFFSET_POLLS]

    def grid_at(self, wall: float) -> tuple[float, float, int] | None:
        """(bpm, monotonic time of the master's next beat after `wall`, that beat's index from the song start),
        or None while the clock is stopped or not yet known."""
        ticks, pos, offsets = list(self._ticks), list(self._positions), list(self._offsets)
        if self.running is False or len(ticks) < 24 or len(pos) != len(ticks) or not offsets:
            return None
        if self._time.monotonic() - self._last_wall > 0.5:
            return None
        # medians, not least squares: a burst of late timestamps (a busy machine, a missed audio cycle) moves
        # a few ticks, not the grid
        spans = sorted((ticks[i] - ticks[j]) / (pos[i] - pos[j]) for i in range(len(ticks))
                       for j in (i - 24,) if j >= 0 and pos[i] > pos[j])
        if not spans:
            return None
        period = spans[len(spans) // 2]
        if period <= 0:
            return None
        zeros = sorted(t - p * period for t, p in zip(ticks, pos))  # backend time of song position 0
        t0 = zeros[len(zeros) // 2] + min(offsets)  # on the monotonic clock: the poll closest to its messages
        at = (wall - t0) / period  # the song position (ticks) at `wall`
        beat = math.floor(at / 24 + 0.02) + 1  # "at a beat" counts as on it: the next one after
        return 60.0 / (24 * period), t0 + beat * 24 * period, beat

    @property
    def bpm(self) -> float | None:
        ticks = list(self._ticks)[-self.WINDOW:]  # a snapshot: the poll thread appends meanwhile
        if len(ticks) < 24 or self._time.monotonic() - self._last_wall > 0.5:
            return None
        n = len(ticks)
        mean_k = (n - 1) / 2
        mean_t = sum(ticks) / n
        num = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(ticks))
        den = sum((k - mean_k) ** 2 for k in range(n))
        period = num / den
        return 60.0 / (24 * period) if period > 0 else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        _release(self.port)
        self.port = None


def _release(port) -> None:
    """Close and free an rtmidi port; a port whose backend already went away may raise, which is fine here."""
    if port is None:
        return
    try:
        port.close_port()
        port.delete()
    except Exception:
        pass
