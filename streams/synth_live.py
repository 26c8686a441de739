"""`synth` output: a General MIDI software synth (FluidSynth) playing live to the sound device (sounddevice).

FluidSynth renders in the audio callback, block by block; note messages arrive from the sender at their
deadlines and take effect at the next block, so the added latency is one block (256 frames, ~6 ms at
44.1 kHz) plus the device's buffer. A per-output latency offset in the config lines it up with others.
"""

from __future__ import annotations

import threading

import numpy as np

from .audio_render import SynthUnavailable, find_soundfont, load_fluidsynth
from .midi_out import MidiOutput, OutputSpec, PortError

HOW_TO_GET_PORTAUDIO = ("the synth output needs PortAudio for sound: Debian/Ubuntu `sudo apt-get install libportaudio2`, "
                        "macOS `brew install portaudio`; then `pip install sounddevice`")


class SynthOutput(MidiOutput):
    def __init__(self, spec: OutputSpec, soundfont: str = "", sample_rate: int = 44100, gain: float = 0.5,
                 blocksize: int = 256, device=None):
        super().__init__(spec)
        self.soundfont = spec.name or soundfont
        self.sample_rate = sample_rate
        self.gain = gain
        self.blocksize = blocksize
        self.device = device
        self.fs = None
        self.stream = None
        self.frames = 0  # frames rendered so far (for tests and the display)
        self.peak = 0.0  # loudest sample since the last reset, 0..1
        self._lock = threading.Lock()

    def open(self) -> None:
        try:
            fluidsynth = load_fluidsynth()
        except SynthUnavailable as e:
            raise PortError(f"synth: {e}") from None
        try:
            import sounddevice as sd  # noqa: PLC0415
        except (ImportError, OSError):
            raise PortError(HOW_TO_GET_PORTAUDIO) from None
        sf = find_soundfont(self.soundfont)
        if sf is None or not sf.is_file():
            raise PortError(f"synth: no soundfont found{f' at {self.soundfont}' if self.soundfont else ''}; "
                            "install fluid-soundfont-gm or give synth:FILE.sf2")
        try:
            info = sd.query_devices(self.device, kind="output")
            # a JACK or PipeWire device runs at its own rate: render at that rate rather than fail
            if info.get("default_samplerate") and "JACK" in sd.query_hostapis(info["hostapi"])["name"]:
                self.sample_rate = int(info["default_samplerate"])
        except (ValueError, sd.PortAudioError):
            raise PortError("synth: no audio output device (`cuecast ports` lists the devices; on a server, "
                            "start JACK or PulseAudio, or use a MIDI output instead)") from None
        self.fs = fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate))
        sfid = self.fs.sfload(str(sf))
        if sfid < 0:
            self.fs.delete()
            raise PortError(f"synth: {sf} is not a soundfont FluidSynth can load")
        for ch in range(16):
            self.fs.program_select(ch, sfid, 128 if ch == 9 else 0, 0)
        try:
            self.stream = sd.OutputStream(samplerate=self.sample_rate, channels=2, dtype="int16",
                                          blocksize=self.blocksize, latency="low", device=self.device,
                                          callback=self._render)
            self.stream.start()
        except sd.PortAudioError as e:
            self.fs.delete()
            raise PortError(f"synth: cannot open the audio device: {e}") from None
        self.ok = True

    def _render(self, outdata, frames, time_info, status) -> None:
        samples = self.fs.get_samples(frames)
        block = np.asarray(samples, dtype=np.int16).reshape(-1, 2)
        outdata[: len(block)] = block
        if len(block) < frames:
            outdata[len(block):] = 0
        self.frames += frames
        if len(block):
            self.peak = max(self.peak, float(np.abs(block).max()) / 32768.0)

    def send(self, msg) -> bool:
        if not self.ok or self.fs is None or not msg:
            return False
        status = msg[0]
        if status >= 0xF0:
            return True  # clock and transport mean nothing to a synth
        kind, ch = status & 0xF0, status & 0x0F
        d1 = msg[1] if len(msg) > 1 else 0
        d2 = msg[2] if len(msg) > 2 else 0
        if kind == 0x90 and d2 > 0:
            self.fs.noteon(ch, d1, d2)
        elif kind in (0x80, 0x90):
            self.fs.noteoff(ch, d1)
        elif kind == 0xB0:
            if d1 == 120:
                self.fs.all_sounds_off(ch)
            elif d1 == 123:
                self.fs.all_notes_off(ch)
            else:
                self.fs.cc(ch, d1, d2)
        elif kind == 0xC0:
            self.fs.program_change(ch, d1)
        elif kind == 0xE0:
            self.fs.pitch_bend(ch, (d1 | (d2 << 7)) - 8192)
        return True

    def close(self) -> None:
        self.ok = False
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:
                pass
            self.stream = None
        if self.fs is not None:
            self.fs.delete()
            self.fs = None
