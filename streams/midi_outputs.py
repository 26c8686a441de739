"""MIDI outputs for live play: existing ports, virtual ports, JACK ports, a software synth, or nothing.

An output is described by a spec string (`rtmidi:NAME`, `virtual:NAME`, `jack:NAME`, `synth`, `none`) and
opened inside the sender process (engine/sender.py). Every output can say whether its port is still
there (`alive`) and open it again when it comes back (`reopen`), so a synth that is unplugged and plugged
in again does not stop the show.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .jack_watch import JackWatch
from .midi_ports import (CLIENT_NAME, PortError, available_text, match_port, midi_apis, open_client, release_port,
                         rtmidi_module)

KINDS = ("rtmidi", "virtual", "jack", "synth", "none")


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
        rtmidi = rtmidi_module()
        kind, name = self.spec.kind, self.spec.name
        if kind == "virtual":
            self._open_virtual(name or self.client_name)
        elif kind == "jack":
            if rtmidi.API_UNIX_JACK not in midi_apis():
                raise PortError("this python-rtmidi has no JACK support; use rtmidi:NAME or virtual:NAME")
            port = open_client("out", rtmidi.API_UNIX_JACK, self.client_name)
            if port is None:
                raise PortError("jack: no JACK server is running (start one, e.g. `jackd -d dummy`, or use rtmidi:NAME)")
            self.port, self.api = port, rtmidi.API_UNIX_JACK
            if name:
                names = port.get_ports()
                i = match_port(names, name)
                if i is None:
                    port.delete()
                    raise PortError(f"no JACK MIDI input port matches {name!r}; available: {available_text(names)}")
                self.target = names[i]
                self.watch = JackWatch(self.client_name)
                self._connect_jack(port, i)
            else:
                port.open_virtual_port("out")
        else:  # rtmidi: search every backend for a matching port
            seen: list[str] = []
            for api in midi_apis():
                port = open_client("out", api, self.client_name)
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
                raise PortError(f"no MIDI output port matches {name!r}; available: {available_text(seen)}"
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
        if not self.watch.wait_cycles(2, timeout=0.5):  # the graph change is applied at a cycle boundary
            time.sleep(0.02)

    def _open_virtual(self, name: str) -> None:
        if sys.platform == "win32":
            raise PortError("Windows MIDI has no virtual ports: install loopMIDI (tobias-erichsen.de), create a port "
                            "there, and use rtmidi:NAME with that port's name")
        for api in midi_apis():
            port = open_client("out", api, self.client_name)
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
            release_port(self.port)
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
