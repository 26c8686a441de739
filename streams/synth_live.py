"""`synth` output: a General MIDI software synth (FluidSynth) playing live to a sound device or to JACK.

Where it plays (`--audio-out`, the synth's `audio_out` option):
  ""                   the default sound device (PortAudio, through the sounddevice package)
  3, "USB Audio"       a sound device by index or by (part of) its name, as `cuecast ports` lists them
  jack, jack:NAME      a JACK client NAME (default "cuecast") with ports out_L and out_R, connected to nothing
  jack:NAME?connect=A,B  ... connected to the JACK input ports A and B (a client name: its first two inputs)

A JACK client is what OBS (its JACK Input Client source), a DAW or a recorder captures by name. FluidSynth
renders in the audio callback, block by block; note messages arrive from the sender at their deadlines and
take effect at the next block, so the added latency is one block (256 frames, ~6 ms at 44.1 kHz; JACK's
period on JACK) plus the device's buffer. A per-output latency offset in the config lines it up with others.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import numpy as np

from cuecast import midi
from cuecast.midi import CC, Status

from .audio_render import _WRITE_FLOAT, SynthUnavailable, find_soundfont, load_fluidsynth
from .midi_outputs import MidiOutput, OutputSpec
from .midi_ports import CLIENT_NAME, PortError, quiet_stderr

INSTALL_LIVE = "pip install 'cuecast[live]' (tools/install.sh installs it)"
HOW_TO_GET_SOUNDDEVICE = f"the synth output needs the sounddevice package to play to a sound device: {INSTALL_LIVE}"
HOW_TO_GET_PORTAUDIO = ("the synth output needs the PortAudio library to play to a sound device: Debian/Ubuntu "
                        "`sudo apt-get install libportaudio2`, macOS `brew install portaudio`")
HOW_TO_GET_JACK_CLIENT = f"--audio-out jack needs the JACK-Client package: {INSTALL_LIVE}"
HOW_TO_GET_LIBJACK = ("--audio-out jack needs the JACK library: Debian/Ubuntu `sudo apt-get install libjack-jackd2-0` "
                      "(or PipeWire's pipewire-jack), macOS `brew install jack`")
JACK_PORTS = ("out_L", "out_R")


@dataclass(frozen=True)
class AudioTarget:
    """Where the synth plays: a sound device (None: the default; an index; a name) or a JACK client."""

    jack: bool = False
    device: int | str | None = None
    client: str = CLIENT_NAME
    exact_name: bool = False  # a client name the user chose must be had exactly
    connect: tuple[str, ...] = field(default=())


def parse_audio_out(text: str | int | None) -> AudioTarget:
    """`--audio-out` spec -> AudioTarget; PortError (one line) for a malformed one."""
    if text is None or text == "":
        return AudioTarget()
    if isinstance(text, int) or str(text).strip().isdigit():
        return AudioTarget(device=int(text))
    text = str(text).strip()
    kind, sep, rest = text.partition(":")
    if kind.lower() != "jack":
        return AudioTarget(device=text)
    name, _, query = rest.partition("?")
    options = parse_qs(query, keep_blank_values=True)
    unknown = set(options) - {"connect"}
    if unknown:
        raise PortError(f"--audio-out {text!r}: unknown option {sorted(unknown)[0]!r} (jack:NAME?connect=PORT_L,PORT_R)")
    connect = tuple(p for v in options.get("connect", []) for p in v.split(",") if p)
    if len(connect) > 2:
        raise PortError(f"--audio-out {text!r}: connect takes one client or two ports (left, right)")
    if name and (":" in name or not name.strip()):
        raise PortError(f"--audio-out {text!r}: the JACK client name may not contain ':'")
    return AudioTarget(jack=True, client=name or CLIENT_NAME, exact_name=bool(name), connect=connect)


class SynthOutput(MidiOutput):
    def __init__(self, spec: OutputSpec, soundfont: str = "", sample_rate: int = 44100, gain: float = 0.5,
                 blocksize: int = 256, device=None, audio_out: str | int | None = None):
        super().__init__(spec)
        self.soundfont = spec.name or soundfont
        self.sample_rate = sample_rate
        self.gain = gain
        self.blocksize = blocksize
        self.target = parse_audio_out(audio_out if audio_out is not None else device)
        self.fs = None
        self.backend = None  # _SoundDevice or _JackClient
        self.frames = 0  # frames rendered so far (for tests and the display)
        self.peak = 0.0  # loudest sample since the last reset, 0..1
        self._write = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.spec.text if self.backend is None else f"{self.spec.text} -> {self.backend.label}"

    def open(self) -> None:
        try:
            fluidsynth = load_fluidsynth()
        except SynthUnavailable as e:
            raise PortError(f"synth: {e}") from None
        backend = _JackClient(self.target) if self.target.jack else _SoundDevice(self.target)
        sf = find_soundfont(self.soundfont)
        if sf is None or not sf.is_file():
            raise PortError(f"synth: no soundfont found{f' at {self.soundfont}' if self.soundfont else ''}; "
                            "install fluid-soundfont-gm or give synth:FILE.sf2")
        self.sample_rate = backend.rate_for(self.sample_rate)  # JACK and PipeWire devices run at their own rate
        self.fs = fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate))
        sfid = self.fs.sfload(str(sf))
        if sfid < 0:
            self.fs.delete()
            self.fs = None
            raise PortError(f"synth: {sf} is not a soundfont FluidSynth can load")
        for ch in range(16):
            self.fs.program_select(ch, sfid, 128 if ch == 9 else 0, 0)
        self._write = _WRITE_FLOAT(("fluid_synth_write_float", fluidsynth._fl))
        try:
            backend.start(self._render, self.sample_rate, self.blocksize)
        except PortError:
            self.fs.delete()
            self.fs = None
            raise
        self.backend = backend
        self.ok = True

    def _render(self, left: np.ndarray, right: np.ndarray) -> None:
        """Fill two float32 buffers (the audio callback's thread)."""
        n = len(left)
        self._write(self.fs.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        self.frames += n
        if n:
            self.peak = max(self.peak, float(np.abs(left).max()), float(np.abs(right).max()))

    def send(self, msg) -> bool:
        if not self.ok or self.fs is None or not msg:
            return False
        status = msg[0]
        if status >= Status.SYSTEM:
            return True  # clock and transport mean nothing to a synth
        kind, ch = midi.kind(status), midi.channel(status)
        d1 = msg[1] if len(msg) > 1 else 0
        d2 = msg[2] if len(msg) > 2 else 0
        if kind == Status.NOTE_ON and d2 > 0:
            self.fs.noteon(ch, d1, d2)
        elif kind in (Status.NOTE_OFF, Status.NOTE_ON):
            self.fs.noteoff(ch, d1)
        elif kind == Status.CONTROL_CHANGE:
            if d1 == CC.ALL_SOUND_OFF:
                self.fs.all_sounds_off(ch)
            elif d1 == CC.ALL_NOTES_OFF:
                self.fs.all_notes_off(ch)
            else:
                self.fs.cc(ch, d1, d2)
        elif kind == Status.PROGRAM_CHANGE:
            self.fs.program_change(ch, d1)
        elif kind == Status.PITCH_BEND:
            self.fs.pitch_bend(ch, (d1 | (d2 << 7)) - 8192)
        return True

    def alive(self) -> bool:
        return self.backend is None or self.backend.alive()

    def close(self) -> None:
        self.ok = False
        if self.backend is not None:
            self.backend.stop()
            self.backend = None
        if self.fs is not None:
            self.fs.delete()
            self.fs = None


class _SoundDevice:
    """A PortAudio output stream (sounddevice) on the chosen device."""

    def __init__(self, target: AudioTarget):
        try:
            import sounddevice as sd  # noqa: PLC0415
        except ImportError:
            raise PortError(HOW_TO_GET_SOUNDDEVICE) from None
        except OSError:
            raise PortError(HOW_TO_GET_PORTAUDIO) from None
        self.sd, self.device = sd, target.device
        try:
            self.info = sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError):
            if self.device is None:
                raise PortError("synth: no audio output device (`cuecast ports` lists the devices; on a server, "
                                "start JACK or PulseAudio, or use --audio-out jack)") from None
            raise PortError(f"no audio output device matches {self.device!r} (`cuecast ports` lists them "
                            "by index and name)") from None
        self.label = self.info["name"]
        self.stream = None

    def rate_for(self, wanted: int) -> int:
        hostapi = self.sd.query_hostapis(self.info["hostapi"])["name"]
        if self.info.get("default_samplerate") and "JACK" in hostapi:
            return int(self.info["default_samplerate"])
        return wanted

    def start(self, render, rate: int, blocksize: int) -> None:
        def callback(outdata, frames, time_info, status) -> None:
            left = np.empty(frames, np.float32)
            right = np.empty(frames, np.float32)
            render(left, right)
            outdata[:, 0] = left
            outdata[:, 1] = right

        try:
            self.stream = self.sd.OutputStream(samplerate=rate, channels=2, dtype="float32", blocksize=blocksize,
                                               latency="low", device=self.device, callback=callback)
            self.stream.start()
        except self.sd.PortAudioError as e:
            raise PortError(f"synth: cannot open the audio device {self.label!r}: {e}") from None

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:
                pass
            self.stream = None


class _JackClient:
    """A JACK client with two audio output ports, rendered in JACK's process callback (JACK-Client)."""

    def __init__(self, target: AudioTarget):
        try:
            import jack  # noqa: PLC0415
        except ImportError:
            raise PortError(HOW_TO_GET_JACK_CLIENT) from None
        except OSError:
            raise PortError(HOW_TO_GET_LIBJACK) from None
        self.jack, self.target = jack, target
        try:
            with quiet_stderr():  # libjack explains a missing server on fd 2; our one line says it better
                self.client = jack.Client(target.client, use_exact_name=target.exact_name, no_start_server=True)
        except jack.JackOpenError as e:
            # JACK2 answers a taken exact name with a bare server error: look whether that client is there
            if target.exact_name and (e.status.name_not_unique or target.client in _jack_clients()):
                raise PortError(f"--audio-out: a JACK client named {target.client!r} exists already") from None
            raise PortError("--audio-out jack: no JACK server is running (start one, e.g. `jackd -d dummy`, "
                            "or choose a sound device; `cuecast ports` lists them)") from None
        self.ports: list = []
        self.label = f"JACK {self.client.name}:{JACK_PORTS[0]}/{JACK_PORTS[1]}"
        self._shutdown = False

    def rate_for(self, wanted: int) -> int:
        return int(self.client.samplerate)  # JACK runs at one rate for every client

    def start(self, render, rate: int, blocksize: int) -> None:
        ports: list = []

        def process(frames: int) -> None:
            if ports:
                render(ports[0].get_array(), ports[1].get_array())

        def shutdown(status, reason) -> None:
            self._shutdown = True

        self.client.set_process_callback(process)
        self.client.set_shutdown_callback(shutdown)
        try:
            self.client.activate()
            # ports once active, so whoever sees them (OBS, a patchbay) can connect at once
            self.ports = [self.client.outports.register(p) for p in JACK_PORTS]
            ports.extend(self.ports)
            self._connect()
        except PortError:
            self.stop()
            raise
        except self.jack.JackError as e:
            self.stop()
            raise PortError(f"--audio-out jack: {e}") from None

    def _connect(self) -> None:
        want = list(self.target.connect)
        if not want:
            return
        if len(want) == 1:  # a client (or one port): its first two audio inputs, or the one port for both sides
            found = self.client.get_ports(f"^{re.escape(want[0])}", is_audio=True, is_input=True)
            names = [p.name for p in found if p.name == want[0]] or [p.name for p in found][:2]
            if not names:
                raise PortError(f"--audio-out: no JACK audio input port or client {want[0]!r} "
                                f"(inputs: {', '.join(self._inputs()) or 'none'})")
            want = names if len(names) == 2 else names * 2
        inputs = self._inputs()
        for port, target in zip(self.ports, want):
            if target not in inputs:
                raise PortError(f"--audio-out: no JACK audio input port {target!r} (inputs: {', '.join(inputs) or 'none'})")
            self.client.connect(port, target)

    def _inputs(self) -> list[str]:
        return [p.name for p in self.client.get_ports(is_audio=True, is_input=True)]

    def alive(self) -> bool:
        return not self._shutdown

    def stop(self) -> None:
        try:
            self.client.deactivate()
        except Exception:
            pass
        try:
            self.client.close()
        except Exception:
            pass


def _jack_clients() -> set[str]:
    """Names of the JACK clients that have ports (empty without a server)."""
    return {p.partition(":")[0] for p in (_jack_ports() or [])}


def jack_audio_inputs() -> list[str] | None:
    """JACK audio input ports others offer (what --audio-out jack:NAME?connect= takes), or None: no JACK here."""
    return _jack_ports(is_audio=True, is_input=True)


def _jack_ports(**kinds) -> list[str] | None:
    try:
        import jack  # noqa: PLC0415

        with quiet_stderr():
            client = jack.Client("cuecast-probe", no_start_server=True)
    except Exception:  # no package, no library, no server: nothing to list
        return None
    try:
        return [p.name for p in client.get_ports(**kinds)]
    finally:
        client.close()
