"""`cuecast ports`: the MIDI outputs and inputs and the audio devices `cuecast live` can use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cuecast.engine.commands.common import add_common_options, config_from_args
from cuecast.streams.synth_live import HOW_TO_GET_PORTAUDIO, HOW_TO_GET_SOUNDDEVICE, jack_audio_inputs

HELP = "list MIDI outputs and inputs (rtmidi, JACK), audio devices and video capture devices"
DESCRIPTION = """\
List what `cuecast live --midi-out` can play to: MIDI output ports on every backend that works here
(ALSA/CoreMIDI/Windows MM, and JACK when a JACK server runs), MIDI inputs, the audio devices the
software synth can play to (`--audio-out INDEX` or `--audio-out NAME`), when JACK runs the JACK audio
inputs `--audio-out jack:NAME?connect=PORT_L,PORT_R` can connect to, and the video capture devices
`--source device:PATH` can watch.

examples:
  cuecast ports
  cuecast live movie.mp4 --midi-out rtmidi:Minilogue   (a name, or part of one, from the list)
  cuecast live movie.mp4 --audio-out 2                 (audio device number 2)"""


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(p)  # nothing here reads the config, but a typo in it is still worth hearing about


def audio_devices() -> tuple[list[dict], str | None]:
    """Output-capable audio devices, or a note saying how to get PortAudio."""
    try:
        import sounddevice as sd  # noqa: PLC0415
    except ImportError:
        return [], HOW_TO_GET_SOUNDDEVICE
    except OSError:
        return [], HOW_TO_GET_PORTAUDIO
    out = []
    try:
        default_out = sd.default.device[1]
        for i, d in enumerate(sd.query_devices()):
            if d["max_output_channels"] > 0:
                out.append({"index": i, "name": d["name"], "hostapi": sd.query_hostapis(d["hostapi"])["name"],
                            "channels": d["max_output_channels"], "rate": d["default_samplerate"],
                            "default": i == default_out})
    except sd.PortAudioError as e:
        return [], f"PortAudio cannot list devices: {e}"
    if not out:
        return [], "no audio output device (on a server: start JACK or PulseAudio/PipeWire)"
    return out, None


def video_devices(sys_dir: Path = Path("/sys/class/video4linux")) -> tuple[list[dict], str | None]:
    """Video capture devices (Linux: v4l2 nodes with the names their drivers give), or a note on how to find them."""
    if sys.platform == "darwin":
        return [], "video devices: device:0, device:1, ... (avfoundation order; `ffmpeg -f avfoundation -list_devices true -i ''` names them)"
    if sys.platform == "win32":
        return [], "video devices: device:video=NAME (`ffmpeg -list_devices true -f dshow -i dummy` names them)"
    out = []
    for node in sorted(sys_dir.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        try:
            name = (node / "name").read_text().strip()
        except OSError:
            name = ""
        out.append({"path": f"/dev/{node.name}", "name": name})
    return out, None if out else "no video capture devices (/dev/video*)"


def run(args) -> int:
    config_from_args(args)
    from cuecast.streams.midi_ports import PortError, jack_running, list_midi_ports  # noqa: PLC0415

    notes: list[str] = []
    try:
        midi = list_midi_ports()
        jack = jack_running()
    except PortError as e:
        midi, jack = {"outputs": [], "inputs": []}, False
        notes.append(str(e))
    audio, audio_note = audio_devices()
    jack_inputs = jack_audio_inputs() or []
    if audio_note:
        notes.append(audio_note)
    video, video_note = video_devices()
    if video_note:
        notes.append(video_note)
    if not jack:
        notes.append("no JACK server running (JACK ports appear when one runs; `jack:NAME` needs it)")
    if not midi["outputs"]:
        notes.append("no MIDI output ports: use virtual:NAME to make one, or synth to play through the sound device")
    if args.json:
        print(json.dumps({"midi_outputs": [{"api": a, "name": n} for a, n in midi["outputs"]],
                          "midi_inputs": [{"api": a, "name": n} for a, n in midi["inputs"]],
                          "audio_outputs": audio, "jack_audio_inputs": jack_inputs, "video_devices": video,
                          "jack": jack, "notes": notes}, indent=1))
        return 0
    for title, key in (("MIDI outputs", "outputs"), ("MIDI inputs", "inputs")):
        print(f"{title}:")
        for api, name in midi[key]:
            print(f"  [{api}] {name}")
        if not midi[key]:
            print("  (none)")
    print("audio outputs (for --audio-out INDEX or NAME):")
    for d in audio:
        star = " (default)" if d["default"] else ""
        print(f"  {d['index']:>3}  [{d['hostapi']}] {d['name']}  {d['channels']} ch, {d['rate']:.0f} Hz{star}")
    if not audio:
        print("  (none)")
    if jack:
        print("JACK audio inputs (for --audio-out jack:NAME?connect=LEFT,RIGHT):")
        for name in jack_inputs:
            print(f"  {name}")
        if not jack_inputs:
            print("  (none)")
    print("video capture devices (for --source device:PATH?size=WxH&fps=N&format=F):")
    for d in video:
        print(f"  {d['path']}  {d['name']}")
    if not video:
        print("  (none)")
    for n in notes:
        print(f"note: {n}")
    return 0
