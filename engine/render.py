"""Offline render: a video file in, soundtrack.mid/.wav/.mp4, timeline.json and report.png out.

It runs the same engine as live, with a clock that runs as fast as the work allows. Outputs are made in a
hidden folder inside OUTDIR and moved to their names only when everything worked, so a failed run never
leaves files that look complete.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cuecast.engine.clock import FastClock
from cuecast.engine.config import Config
from cuecast.engine.errors import InputError, UserError
from cuecast.engine.pipeline import Engine, NoFramesError
from cuecast.engine.stages import build_stages
from cuecast.engine.timeline import timeline_json, write_json
from cuecast.models.music.metrics import chord_onsets
from cuecast.streams.midi_file import MidiFileError, MidiFileSink, write_midi
from cuecast.streams.network import is_network_url, open_network
from cuecast.streams.sources import is_pipe, open_source
from cuecast.types import Note, SourceError, Timeline

OUTPUTS = ("soundtrack.mid", "soundtrack.wav", "soundtrack.mp4", "timeline.json", "report.png")


@dataclass
class RenderResult:
    outdir: Path
    files: list[Path]
    timeline: Timeline
    notes: list[Note]
    wall_s: float
    warnings: list[str] = field(default_factory=list)


def prepare_outdir(outdir: Path) -> Path:
    """Create OUTDIR and a private working folder in it; a clear error when that is impossible."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".cuecast-", dir=outdir))
    except FileExistsError:
        raise UserError(f"cannot use {outdir} as output folder: a file of that name exists") from None
    except OSError as e:
        raise UserError(f"cannot write to {outdir}: {e.strerror or e}") from None


def analyse(input_path: Path | str, cfg: Config, progress: bool = True, record_to: Path | None = None,
            warnings: list[str] | None = None) -> tuple[Timeline, list[Note], MidiFileSink]:
    """Run the engine over the whole file (or a stream, to its end, kept in record_to) as fast as it goes;
    what the input did that the user should know (a discontinuity, the length limit, a truncated file) is
    added to `warnings`."""
    try:
        if record_to is not None:
            source = open_network(str(input_path), cfg.source, realtime=False, record_to=str(record_to))
        else:
            source = open_source(f"file:{input_path}", cfg.source, realtime=False)
    except SourceError as e:
        raise InputError(str(e)) from None
    sink = MidiFileSink()
    engine = Engine(cfg, source, sink, FastClock(cfg.conductor.lookahead_s), build_stages(cfg))
    bar = tqdm(total=round(source.info.duration, 1) or None, unit="s", desc="analysing", file=sys.stderr,
               disable=not progress or not sys.stderr.isatty(), mininterval=0.5, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s media [{elapsed}<{remaining}]")

    def advance(t: float) -> None:
        bar.update(max(0.0, round(t, 1) - bar.n))

    try:
        timeline = asyncio.run(engine.run(progress=advance))
    except NoFramesError:
        raise InputError(f"{input_path} has no video frames") from None
    except SourceError as e:
        raise InputError(str(e)) from None
    finally:
        bar.close()
        if warnings is not None:
            warnings.extend(getattr(source, "warnings", []))
    notes = list(sink.notes)
    timeline.chords = chord_onsets(notes)
    return timeline, notes, sink


def render(input_path: str | Path, outdir: str | Path, cfg: Config, progress: bool = True) -> RenderResult:
    """INPUT is a video file, or a stream URL (http(s), HLS, rtsp, rtmp, srt, udp) or pipe (pipe:PATH, -)
    read to its end."""
    started = time.perf_counter()
    url = str(input_path) if is_network_url(str(input_path)) or is_pipe(str(input_path)) else None
    input_path, outdir = Path(input_path), Path(outdir)
    if url is None and not input_path.exists():
        raise InputError(f"no such file: {input_path}")
    work = prepare_outdir(outdir)
    warnings: list[str] = []
    try:
        if url is None:
            timeline, notes, sink = analyse(input_path, cfg, progress, warnings=warnings)
        else:  # the stream is kept as it comes, for soundtrack.mp4
            input_path = work / "stream.mkv"
            timeline, notes, sink = analyse(url, cfg, progress, record_to=input_path, warnings=warnings)
        steps = Steps(("MIDI", "report", "synthesis", "muxing"), progress)
        try:
            made = _write_outputs(work, input_path, cfg, timeline, notes, sink, warnings, name=url, steps=steps)
        finally:
            steps.close()
        for name in OUTPUTS:  # no stale file from an earlier run may pass for this run's output
            (outdir / name).unlink(missing_ok=True)
        files = []
        for path in made:
            final = outdir / path.name
            path.replace(final)
            files.append(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return RenderResult(outdir, files, timeline, notes, time.perf_counter() - started, warnings)


def _write_outputs(work: Path, input_path: Path, cfg: Config, timeline: Timeline, notes: list[Note],
                   sink: MidiFileSink, warnings: list[str], name: str | None = None,
                   steps: "Steps | None" = None) -> list[Path]:
    steps = steps or Steps((), False)
    chans = cfg.instrument_map()
    mid = work / "soundtrack.mid"
    try:
        write_midi(mid, notes, sink.tempo_map, chans, timeline.duration)
    except MidiFileError as e:
        raise UserError(str(e)) from None
    steps.done("MIDI")
    timeline.meta.update(input=name or str(input_path), generator=cfg.generator.backend, seed=cfg.generator.seed,
                         lookahead_s=cfg.conductor.lookahead_s)
    tl = work / "timeline.json"
    write_json(tl, timeline_json(timeline))
    # FluidSynth and the muxer run in C with the GIL released: draw the report on the other core meanwhile
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        audio = pool.submit(_write_audio, work, input_path, cfg, timeline, notes, chans, warnings, steps)
        png = None
        if cfg.output.report:
            from cuecast.engine.report import write_report

            png = work / "report.png"
            write_report(png, timeline, notes)
        steps.done("report")
        media = audio.result()
    return [mid, tl, *media, *([png] if png else [])]


def _write_audio(work: Path, input_path: Path, cfg: Config, timeline: Timeline, notes: list[Note],
                 chans: dict, warnings: list[str], steps: "Steps") -> list[Path]:
    """soundtrack.wav and soundtrack.mp4, or none of them (with a warning) where no synth can be loaded."""
    from cuecast.streams.audio_render import AudioRenderError, SynthUnavailable, render_audio
    from cuecast.streams.mp4 import MuxError, mux_soundtrack

    wav, mp4 = work / "soundtrack.wav", work / "soundtrack.mp4"
    try:
        render_audio(notes, chans, timeline.duration, wav, sample_rate=cfg.output.sample_rate,
                     soundfont=cfg.output.soundfont, gain=cfg.output.gain)
    except SynthUnavailable as e:
        warnings.append(f"no audio (soundtrack.wav and soundtrack.mp4 skipped): {e}")
        steps.done("synthesis", "muxing")
        return []
    except AudioRenderError as e:
        raise UserError(str(e)) from None
    steps.done("synthesis")
    try:
        mux_soundtrack(input_path, wav, mp4, cfg.output.mix_original_audio, cfg.source.max_gap_s,
                       cfg.source.max_duration_s)
    except MuxError as e:
        raise UserError(f"cannot write soundtrack.mp4: {e}") from None
    steps.done("muxing")
    return [wav, mp4]


class Steps:
    """The phases after the analysis (MIDI, report, synthesis, muxing), as a second progress bar: how many
    are done and which still run, so the progress never sits at 100 % while work goes on."""

    def __init__(self, names: tuple[str, ...], progress: bool):
        self.left = list(names)
        self.bar = tqdm(total=len(names), desc="writing", unit="step", file=sys.stderr, leave=True,
                        disable=not progress or not names or not sys.stderr.isatty(),
                        bar_format="{desc}: {bar}| {n}/{total} [{elapsed}] {postfix}")
        self.bar.set_postfix_str(", ".join(self.left))
        self._lock = threading.Lock()  # the report and the audio finish on different threads

    def done(self, *names: str) -> None:
        with self._lock:
            for name in names:
                if name in self.left:
                    self.left.remove(name)
                    self.bar.update(1)
            self.bar.set_postfix_str(", ".join(self.left) or "done")

    def close(self) -> None:
        self.bar.close()
