"""Audio of the soundtrack through a SoundFont synth (FluidSynth via pyfluidsynth): offline for a whole
piece (render_audio), or in media time as the notes come (StreamingSynth, for live --video-out).

The offline render is a pure function of its inputs: events are applied at their sample positions (FluidSynth
starts them at its next 64-sample block) into float buffers (fluid_synth_write_float, no dither), so the
same notes give the same WAV, rendered block by block so a feature-length input needs little memory.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import math
import threading
import wave
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from cuecast.types import Note

from .files import replacing
from cuecast.midi import CC
from cuecast.types import DRUM_CHANNEL, INSTRUMENTS, Instrument, assign_channels

from .midi_file import note_spans, resolve_channels

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
BLOCK = 1 << 16  # frames per rendered block (1.5 s at 44.1 kHz)
FADE_OUT_S = 0.01  # notes still sounding at the end are cut: a short fade keeps that from clicking

HOW_TO_GET_AUDIO = (
    "the FluidSynth library is not installed; to get audio: Debian/Ubuntu `sudo apt-get install fluidsynth "
    "fluid-soundfont-gm`, macOS `brew install fluid-synth`, Windows install FluidSynth and put its bin folder "
    "on PATH (or `pip install pyfluidsynth` plus libfluidsynth's DLL)"
)

# int fluid_synth_write_float(synth, len, lout, loff, lincr, rout, roff, rincr): our own prototype, so the
# shared CDLL attribute pyfluidsynth uses is left as it is.
_WRITE_FLOAT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)


class SynthUnavailable(Exception):
    """No synth library: render writes everything else and prints this one line."""

    def __init__(self, message: str = HOW_TO_GET_AUDIO):
        super().__init__(message)


class AudioRenderError(Exception):
    """The audio cannot be rendered or written (bad soundfont, unwritable path)."""


def find_soundfont(explicit: str = "") -> Path | None:
    """The explicit path; else Debian's FluidR3_GM; else the TimGM6mb inside the pretty-midi wheel."""
    if explicit:
        return Path(explicit)
    if DEBIAN_SOUNDFONT.is_file():
        return DEBIAN_SOUNDFONT
    try:
        import pretty_midi  # noqa: PLC0415 - only to locate the file it ships
    except ImportError:
        return None
    p = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return p if p.is_file() else None


def load_fluidsynth():
    """The pyfluidsynth module, or SynthUnavailable (importing it raises when libfluidsynth is missing)."""
    import contextlib  # noqa: PLC0415
    import io  # noqa: PLC0415

    try:  # pyfluidsynth prints where it found the library when CI is set; our stdout carries data (JSON, tables)
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth  # noqa: PLC0415
    except (ImportError, OSError):
        raise SynthUnavailable() from None
    if not hasattr(fluidsynth, "Synth") or not hasattr(getattr(fluidsynth, "_fl", None), "fluid_synth_write_float"):
        raise SynthUnavailable()
    return fluidsynth


def render_audio(notes: Sequence[Note], channel_map: dict[str, Instrument], duration: float, wav_path: str | Path,
                 sample_rate: int = 44100, soundfont: str = "", gain: float = 0.5,
                 tempo_map: object = None) -> None:
    """Render notes to a 16-bit stereo WAV exactly `duration` seconds long (written atomically).

    channel_map: instrument -> Instrument, as for write_midi; drums on 10.
    tempo_map is accepted and unused: notes are already in media seconds.
    """
    del tempo_map
    if not (math.isfinite(duration) and duration >= 0):
        raise AudioRenderError(f"duration must be a finite number of seconds >= 0, got {duration}")
    write_wav(wav_path, synthesize_blocks(notes, channel_map, duration, sample_rate, soundfont, gain), sample_rate)


def synthesize(notes: Sequence[Note], channel_map: dict[str, Instrument], duration: float, sample_rate: int = 44100,
               soundfont: str = "", gain: float = 0.5) -> np.ndarray:
    """float32 (n, 2) in [-1, 1], n = round(duration * sample_rate)."""
    blocks = list(synthesize_blocks(notes, channel_map, duration, sample_rate, soundfont, gain))
    return np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)


def synthesize_blocks(notes: Sequence[Note], channel_map: dict[str, Instrument], duration: float,
                      sample_rate: int = 44100, soundfont: str = "", gain: float = 0.5) -> Iterator[np.ndarray]:
    """The render as float32 (k, 2) blocks of at most BLOCK frames: memory stays small for a feature film."""
    total = int(round(duration * sample_rate))
    chan = resolve_channels(channel_map, notes)
    spans = note_spans(notes, chan, lambda t: int(round(t * sample_rate)), total)
    events = []  # (sample, order, channel0, pitch, velocity): offs before ons at one sample
    for name, items in spans.items():
        c = chan[name].channel - 1
        for on, off, pitch, vel in items:
            events.append((on, 1, c, pitch, vel))
            if off < total:
                events.append((off, 0, c, pitch, 0))
    events.sort()
    # no notes: silence, and no need for a synth at all
    source = _synth_blocks(events, total, chan, sample_rate, soundfont, gain) if events else _silence(total)
    fade = min(total, int(FADE_OUT_S * sample_rate))
    pos = 0
    for block in source:
        np.clip(block, -1.0, 1.0, out=block)
        lo = max(pos, total - fade)
        if lo < pos + len(block):  # this block holds (part of) the fade-out
            ramp = 1.0 - (np.arange(lo, pos + len(block)) - (total - fade)) / max(1, fade - 1)
            block[lo - pos:] *= ramp.astype(np.float32)[:, None]
        pos += len(block)
        yield block


def _silence(total: int) -> Iterator[np.ndarray]:
    for pos in range(0, total, BLOCK):
        yield np.zeros((min(BLOCK, total - pos), 2), np.float32)


def open_synth(chan: dict, sample_rate: int, soundfont: str, gain: float):
    """A FluidSynth with the soundfont loaded and each channel's program set, and its float writer:
    write(synth.synth, n, left_ptr, left_offset, left_step, right_ptr, right_offset, right_step)."""
    fs_mod = load_fluidsynth()
    sf = find_soundfont(soundfont)
    if sf is None:
        raise SynthUnavailable("no SoundFont found: install one (Debian/Ubuntu `sudo apt-get install "
                               "fluid-soundfont-gm`) or set output.soundfont to an .sf2 file")
    if not sf.is_file():
        raise AudioRenderError(f"soundfont {sf} is not a file")
    # One core for the synth: render runs beside video decoding and the models on a 2-core machine.
    synth = fs_mod.Synth(gain=float(gain), samplerate=float(sample_rate), **{"synth.cpu-cores": 1})
    try:
        sfid = synth.sfload(str(sf))
        if sfid == -1:
            raise AudioRenderError(f"FluidSynth cannot load the soundfont {sf}")
        for inst in chan.values():
            bank = 128 if inst.channel == DRUM_CHANNEL else 0
            synth.program_select(inst.channel - 1, sfid, bank, inst.program)
            if inst.volume is not None:
                synth.cc(inst.channel - 1, CC.VOLUME, int(inst.volume))
    except BaseException:
        synth.delete()
        raise
    return synth, _WRITE_FLOAT(("fluid_synth_write_float", fs_mod._fl))


def _synth_blocks(events: list[tuple], total: int, chan: dict, sample_rate: int, soundfont: str,
                  gain: float) -> Iterator[np.ndarray]:
    """Run FluidSynth through the events. It starts a note at its next 64-sample block (1.5 ms at 44.1 kHz)."""
    synth, write = open_synth(chan, sample_rate, soundfont, gain)
    try:
        ei = 0
        for pos in range(0, total, BLOCK):
            block = np.zeros((min(BLOCK, total - pos), 2), np.float32)
            ptr, filled = block.ctypes.data, 0
            while filled < len(block):
                while ei < len(events) and events[ei][0] <= pos + filled:
                    _, kind, c, pitch, vel = events[ei]
                    if kind:
                        synth.noteon(c, pitch, vel)
                    else:
                        synth.noteoff(c, pitch)
                    ei += 1
                upto = min(pos + len(block), events[ei][0] if ei < len(events) else total)
                write(synth.synth, upto - pos - filled, ptr, 2 * filled, 2, ptr, 2 * filled + 1, 2)
                filled = upto - pos
            yield block
    finally:
        synth.delete()


class StreamingSynth:
    """A NoteSink that renders its notes in media time, as far as the output asks (render(n)).

    It gets the notes the live MIDI outputs get and follows the sender's rules, so it sounds what they
    play: a note handed over after its time sounds at once, a re-struck key ends the sounding one first,
    cut_at drops notes not yet begun and ends those sounding at the cut. Sample 0 is media time zero.
    notes()/cut_at() come from the engine's thread, render() from the writer's.
    """

    def __init__(self, channel_map: dict[str, Instrument], sample_rate: int = 44100, soundfont: str = "",
                 gain: float = 0.5):
        self.rate = int(sample_rate)
        self.chan = resolve_channels(channel_map, INSTRUMENTS)
        self.synth, self._write = open_synth(self.chan, self.rate, soundfont, gain)
        self.pos = 0  # samples rendered
        self._heap: list[tuple] = []  # (sample, order, seq, kind, payload): note-offs before note-ons
        self._seq = itertools.count()
        self._ids = itertools.count()
        self._sounding: dict[tuple[int, int], int] = {}
        self._on_sent: set[int] = set()
        self._lock = threading.Lock()

    # ---- NoteSink ----
    def tempo(self, t: float, bpm: float, beat: float) -> None:
        pass  # notes are already in media seconds

    def notes(self, notes: Sequence[Note]) -> None:
        with self._lock:
            for n in notes:
                if not (math.isfinite(n.start) and math.isfinite(n.end)) or not 0 <= n.pitch <= 127:
                    continue
                ch = self._channel(n.instrument)
                on = int(round(n.start * self.rate))
                off = max(on + 1, int(round(n.end * self.rate)))
                nid = next(self._ids)
                heapq.heappush(self._heap, (on, 2, next(self._seq), "on", (nid, ch, n.pitch, max(1, min(127, int(n.velocity))))))
                heapq.heappush(self._heap, (off, 1, next(self._seq), "off", (nid, ch, n.pitch)))

    def cut_at(self, t: float) -> None:
        cut = int(round(t * self.rate))
        with self._lock:
            dropped = {e[4][0] for e in self._heap if e[3] == "on" and e[0] >= cut}
            kept = []
            for e in self._heap:
                if e[4][0] in dropped:
                    continue
                if e[3] == "off" and e[0] > cut:
                    e = (max(cut, self.pos), *e[1:])
                kept.append(e)
            heapq.heapify(kept)
            self._heap = kept

    def close(self) -> None:
        pass  # what sounds ends at its note-off; the writer asks for samples until its own end

    # ---- output ----
    def render(self, n: int) -> np.ndarray:
        """The next n samples, float32 (n, 2)."""
        block = np.zeros((n, 2), np.float32)
        ptr, filled = block.ctypes.data, 0
        with self._lock:
            while filled < n:
                here = self.pos + filled
                while self._heap and self._heap[0][0] <= here:
                    self._apply(heapq.heappop(self._heap))
                upto = min(self.pos + n, self._heap[0][0] if self._heap else self.pos + n)
                self._write(self.synth.synth, upto - here, ptr, 2 * filled, 2, ptr, 2 * filled + 1, 2)
                filled = upto - self.pos
            self.pos += n
        return np.clip(block, -1.0, 1.0, out=block)

    def release(self) -> None:
        """Free FluidSynth (after the last render)."""
        if self.synth is not None:
            self.synth.delete()
            self.synth = None

    def _apply(self, event: tuple) -> None:
        _, _, _, kind, payload = event
        if kind == "on":
            nid, ch, pitch, vel = payload
            key = (ch, pitch)
            if self._sounding.get(key, 0) > 0:
                self.synth.noteoff(ch, pitch)
            self.synth.noteon(ch, pitch, vel)
            self._sounding[key] = self._sounding.get(key, 0) + 1
            self._on_sent.add(nid)
            return
        nid, ch, pitch = payload
        if nid not in self._on_sent:
            return
        self._on_sent.discard(nid)
        key = (ch, pitch)
        left = self._sounding.get(key, 0) - 1
        if left <= 0:
            self._sounding.pop(key, None)
            self.synth.noteoff(ch, pitch)
        else:
            self._sounding[key] = left

    def _channel(self, instrument: str) -> int:
        if instrument not in self.chan:  # an instrument the generator made up: placed once, by the rule
            self.chan = assign_channels(self.chan, [instrument])
        return self.chan[instrument].channel - 1


def write_wav(path: str | Path, audio: np.ndarray | Iterable[np.ndarray], sample_rate: int) -> None:
    """16-bit stereo WAV from an (n, 2) array or from blocks of one, atomically (temp file, then os.replace)."""
    path = Path(path)
    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            for block in blocks:
                w.writeframes(np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
    except OSError as e:
        raise AudioRenderError(f"cannot write {path}: {e.strerror or e}") from None


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """float32 (n, channels) and the sample rate of a 16-bit WAV (tests, evaluation)."""
    with wave.open(str(path), "rb") as w:
        n, ch, rate = w.getnframes(), w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, ch)
    return data.astype(np.float32) / 32767.0, rate


