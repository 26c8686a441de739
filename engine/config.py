"""The one typed configuration object, loaded from TOML presets in configs/ and passed down.

Sections that belong to a model live beside that model (models/*/config.py) so the models stay usable
without the engine; this module composes them, reads TOML into them and checks every value.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cuecast.engine.errors import ConfigError
from cuecast.models.cuts.config import CutConfig
from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.music.config import GeneratorConfig
from cuecast.types import INSTRUMENTS, Instrument


def check(cond: bool, key: str, msg: str, value) -> None:
    if not cond:
        raise ConfigError(f"config: {key} {msg} (got {value!r})")


@dataclass
class SourceConfig:
    analysis_width: int = 320  # frames are downscaled to this width for every analysis stage
    queue_frames: int = 32  # bounded queue between decoder and analysis; live sources drop the oldest
    decode_threads: int = 0  # 0 lets FFmpeg choose
    audio: bool = True  # decode the input's audio for the emotion and forecast stages
    # Bounds on what an input can ask for (streams/limits.py): one pass over a file stops here, and a
    # frame-time jump longer than max_gap_s is a discontinuity (a splice, a broken stream), not minutes of
    # music. Raise max_gap_s for slide shows that hold a picture longer.
    max_duration_s: float = 4 * 3600.0
    max_gap_s: float = 10.0
    connect_timeout_s: float = 10.0  # a network stream that does not answer within this is an error
    read_timeout_s: float = 3.0  # a network stream silent this long has dropped: reconnect (music carries on)

    def validate(self, key: str) -> None:
        check(32 <= self.analysis_width <= 1920, f"{key}.analysis_width", "must be in 32..1920", self.analysis_width)
        check(1 <= self.queue_frames <= 1024, f"{key}.queue_frames", "must be in 1..1024", self.queue_frames)
        check(0 <= self.decode_threads <= 64, f"{key}.decode_threads", "must be in 0..64", self.decode_threads)
        check(1.0 <= self.max_duration_s <= 7 * 86400.0, f"{key}.max_duration_s", "must be in 1..604800 seconds",
              self.max_duration_s)
        check(0.1 <= self.max_gap_s <= 3600.0, f"{key}.max_gap_s", "must be in 0.1..3600 seconds", self.max_gap_s)
        check(0.1 <= self.connect_timeout_s <= 600, f"{key}.connect_timeout_s", "must be in 0.1..600 seconds",
              self.connect_timeout_s)
        check(0.1 <= self.read_timeout_s <= 600, f"{key}.read_timeout_s", "must be in 0.1..600 seconds", self.read_timeout_s)


@dataclass
class RuntimeConfig:
    # Intra-op threads for torch on the CPU. The per-frame tensors are small: one thread is ~10x cheaper in
    # CPU time than two fighting over 2 cores, and leaves the other core to decoding.
    torch_threads: int = 1
    # Live: seconds between giving the C heap's free memory back to the system (engine/heap.py); 0 never.
    # Without it glibc's arenas keep what was freed and a run of hours creeps up in RSS.
    heap_release_s: float = 60.0

    def validate(self, key: str) -> None:
        check(1 <= self.torch_threads <= 256, f"{key}.torch_threads", "must be in 1..256", self.torch_threads)
        check(self.heap_release_s == 0 or 1 <= self.heap_release_s <= 3600, f"{key}.heap_release_s",
              "must be 0 (never) or in 1..3600 seconds", self.heap_release_s)


@dataclass
class ConductorConfig:
    lookahead_s: float = 3.0  # L: the playhead runs this far behind the newest analysed frame
    horizon_s: float = 0.5  # how far ahead of the playhead the generator may run
    beats_per_bar: int = 4
    tempo_min: float = 60.0
    tempo_max: float = 160.0
    max_tempo_nudge: float = 0.08  # fraction by which tempo may bend to land a beat on a known cut
    min_boundary_gap_s: float = 0.6  # no forecast is planned this close to another boundary; one event from two sources this close is one
    use_forecast: bool = True  # plan for forecast cuts where the lookahead does not reach
    forecast_threshold: float = 0.5  # forecast probability at which a predicted cut is planned for

    def validate(self, key: str) -> None:
        check(0.0 <= self.lookahead_s <= 30.0, f"{key}.lookahead_s", "must be in 0..30 seconds", self.lookahead_s)
        check(0.05 <= self.horizon_s <= 5.0, f"{key}.horizon_s", "must be in 0.05..5 seconds", self.horizon_s)
        check(2 <= self.beats_per_bar <= 12, f"{key}.beats_per_bar", "must be in 2..12", self.beats_per_bar)
        check(20.0 <= self.tempo_min < self.tempo_max <= 300.0, f"{key}.tempo_min/tempo_max",
              "must satisfy 20 <= tempo_min < tempo_max <= 300", (self.tempo_min, self.tempo_max))
        check(0.0 <= self.max_tempo_nudge <= 0.3, f"{key}.max_tempo_nudge", "must be in 0..0.3", self.max_tempo_nudge)
        check(0.0 <= self.min_boundary_gap_s <= 10, f"{key}.min_boundary_gap_s", "must be in 0..10", self.min_boundary_gap_s)
        check(0.0 < self.forecast_threshold <= 1.0, f"{key}.forecast_threshold", "must be in (0, 1]", self.forecast_threshold)


@dataclass
class InstrumentConfig:
    channel: int  # 1..16 as musicians count them; drums on 10
    program: int  # General MIDI program 0..127
    volume: int = 100

    def validate(self, key: str) -> None:
        check(1 <= self.channel <= 16, f"{key}.channel", "must be in 1..16", self.channel)
        check(0 <= self.program <= 127, f"{key}.program", "must be in 0..127", self.program)
        check(0 <= self.volume <= 127, f"{key}.volume", "must be in 0..127", self.volume)


def default_instruments() -> dict[str, InstrumentConfig]:
    return {
        "drums": InstrumentConfig(channel=10, program=0, volume=96),
        "bass": InstrumentConfig(channel=2, program=33, volume=100),  # electric bass (finger)
        "chords": InstrumentConfig(channel=3, program=0, volume=92),  # acoustic grand piano
        "melody": InstrumentConfig(channel=4, program=73, volume=96),  # flute
        "pad": InstrumentConfig(channel=5, program=48, volume=80),  # string ensemble 1
    }


@dataclass
class OutputConfig:
    sample_rate: int = 44100
    soundfont: str = ""  # empty: FluidR3_GM when installed, else the TimGM6mb inside pretty-midi
    gain: float = 0.5
    mix_original_audio: float = 0.0  # 0 replaces the input's audio; >0 mixes it under the soundtrack
    report: bool = True

    def validate(self, key: str) -> None:
        check(8000 <= self.sample_rate <= 192000, f"{key}.sample_rate", "must be in 8000..192000", self.sample_rate)
        check(0.0 < self.gain <= 10.0, f"{key}.gain", "must be in (0, 10]", self.gain)
        check(0.0 <= self.mix_original_audio <= 1.0, f"{key}.mix_original_audio", "must be in 0..1", self.mix_original_audio)
        if self.soundfont:
            check(Path(self.soundfont).is_file(), f"{key}.soundfont", "is not a file", self.soundfont)


@dataclass
class VideoOutConfig:
    """`cuecast live --video-out`: H.264 + AAC with what platform ingests accept by default."""

    video_kbps: int = 0  # 0: from the picture size and rate (about 0.1 bit per pixel: 720p30 2.8 Mb/s)
    keyframe_s: float = 2.0  # a keyframe every 2 s, as ingest servers ask
    preset: str = "veryfast"  # x264 speed/quality trade-off: ultrafast .. medium
    audio_kbps: int = 160
    sample_rate: int = 48000  # the AAC's rate: video's own (the input's sound is resampled to it, stereo)
    mix_input_audio: float = 0.0  # the input's own sound under the music (0: the soundtrack replaces it)

    def validate(self, key: str) -> None:
        check(self.video_kbps == 0 or 100 <= self.video_kbps <= 50000, f"{key}.video_kbps", "must be 0 (auto) or 100..50000", self.video_kbps)
        check(0.0 <= self.keyframe_s <= 20.0, f"{key}.keyframe_s", "must be in 0..20 s", self.keyframe_s)
        check(self.preset in X264_PRESETS, f"{key}.preset", f"must be one of {', '.join(X264_PRESETS)}", self.preset)
        check(32 <= self.audio_kbps <= 512, f"{key}.audio_kbps", "must be in 32..512", self.audio_kbps)
        check(self.sample_rate in (44100, 48000), f"{key}.sample_rate", "must be 44100 or 48000", self.sample_rate)
        check(0.0 <= self.mix_input_audio <= 1.0, f"{key}.mix_input_audio", "must be in 0..1", self.mix_input_audio)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


@dataclass
class LiveConfig:
    latency_ms: dict[str, float] = field(default_factory=dict)  # per-output offset, by output spec
    clock_out: bool = True  # send MIDI clock (24 ppqn), start, stop, song position
    realtime_priority: bool = True  # run the MIDI sender at real-time priority where the OS allows it
    synth_block: int = 256  # frames per audio block of the `synth` output (its latency: 256 = 5.8 ms at 44.1 kHz)

    def validate(self, key: str) -> None:
        for name, ms in self.latency_ms.items():
            check(-500.0 <= ms <= 2000.0, f"{key}.latency_ms.{name}", "must be in -500..2000 ms", ms)
        check(32 <= self.synth_block <= 8192, f"{key}.synth_block", "must be in 32..8192 frames", self.synth_block)


@dataclass
class HintsConfig:
    """Cuts announced from outside (a switcher, a show controller, OBS) join the boundary stream."""

    mqtt: str = ""  # "host:port" of an MQTT broker; payload {"in": seconds} or {"t": media time}
    mqtt_topic: str = "cuecast/cut"
    osc: str = ""  # "host:port" to listen on for /cuecast/cut [seconds] and /cuecast/cut_at media_time
    obs: str = ""  # obs-websocket v5 URL, e.g. "ws://127.0.0.1:4455"
    obs_password: str = ""
    obs_delay_s: float = 0.0  # seconds from SceneTransitionStarted to the cut

    def validate(self, key: str) -> None:
        for name in ("mqtt", "osc"):
            spec = getattr(self, name)
            if spec:
                host, _, port = spec.rpartition(":")
                check(bool(host) and port.isdigit() and 0 < int(port) < 65536, f"{key}.{name}",
                      "must be host:port", spec)
        if self.obs:
            check(self.obs.startswith(("ws://", "wss://")), f"{key}.obs", "must be a ws:// or wss:// URL", self.obs)
        check(0.0 <= self.obs_delay_s <= 10.0, f"{key}.obs_delay_s", "must be in 0..10", self.obs_delay_s)


@dataclass
class ControlConfig:
    """Remote control and telemetry: state out and commands in (MQTT, OSC, the WebSocket overlay)."""

    name: str = ""  # this instance's name in MQTT topics (cuecast/<name>); empty: the host name
    mqtt: str = ""  # mqtt[s]://[user:pass@]HOST[:PORT][/PREFIX]
    osc_out: str = ""  # "host:port" to send /cuecast/beat, /bar, /tempo, /cut, /valence, /arousal, /phase to
    osc_in: str = ""  # "host:port" to listen on for /cuecast/set/... commands
    overlay: str = ""  # "host:port" of the overlay web server (/overlay, /ws) when no WebRTC page serves it
    token: str = ""  # listeners bound beyond loopback (OSC, overlay, hints.osc) take only this token
    state_hz: float = 10.0  # state messages per second
    osc_latency_ms: float = 0.0  # OSC messages this much later than the notes' send times (a slow VJ path: <0)

    def validate(self, key: str) -> None:
        if self.mqtt:
            check(self.mqtt.startswith(("mqtt://", "mqtts://")), f"{key}.mqtt",
                  "must look like mqtt[s]://[user:pass@]host[:port][/prefix]", self.mqtt)
        for name in ("osc_out", "osc_in", "overlay"):
            spec = getattr(self, name)
            if spec:
                host, _, port = spec.rpartition(":")
                check(bool(host) and port.isdigit() and 0 < int(port) < 65536, f"{key}.{name}", "must be host:port", spec)
        check(4.0 <= self.state_hz <= 60.0, f"{key}.state_hz", "must be in 4..60", self.state_hz)
        check(-500.0 <= self.osc_latency_ms <= 2000.0, f"{key}.osc_latency_ms", "must be in -500..2000", self.osc_latency_ms)
        check(all(c.isalnum() or c in "-_." for c in self.name), f"{key}.name",
              "may hold letters, digits, '-', '_' and '.' only (it goes into MQTT topics)", self.name)


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    cuts: CutConfig = field(default_factory=CutConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    conductor: ConductorConfig = field(default_factory=ConductorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    instruments: dict[str, InstrumentConfig] = field(default_factory=default_instruments)
    output: OutputConfig = field(default_factory=OutputConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    video_out: VideoOutConfig = field(default_factory=VideoOutConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    hints: HintsConfig = field(default_factory=HintsConfig)
    control: ControlConfig = field(default_factory=ControlConfig)

    def instrument_map(self) -> dict[str, Instrument]:
        """What the MIDI writers and the sender take: instrument -> Instrument."""
        return {name: Instrument(i.channel, i.program, i.volume) for name, i in self.instruments.items()}

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "instruments":
                unknown = set(value) - set(INSTRUMENTS)
                check(not unknown, "instruments", f"has unknown instruments; known: {', '.join(INSTRUMENTS)}", sorted(unknown))
                for name, inst in value.items():
                    inst.validate(f"instruments.{name}")
            else:
                try:
                    value.validate(f.name)
                except ValueError as e:  # raised by the model-owned sections
                    raise ConfigError(str(e)) from None
        return self


PRESETS = ("default", "stream", "vj", "broadcast")


def preset_path(name: str) -> Path:
    return Path(str(resources.files("cuecast.configs").joinpath(f"{name}.toml")))


def load_config(spec: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load a preset name ("stream") or a TOML file over the defaults, then apply dotted overrides."""
    data: dict = {}
    if spec:
        path = preset_path(str(spec)) if str(spec) in PRESETS else Path(spec)
        if not path.is_file():
            raise ConfigError(f"config: no such preset or file: {spec} (presets: {', '.join(PRESETS)})")
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config: {path} is not valid TOML: {e}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(Config, data, "").validate()


def from_dict(cls, data: dict, prefix: str):
    """Build dataclass `cls` from a TOML table, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix or 'top level'} must be a table (got {data!r})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"config: unknown key {prefix + '.' if prefix else ''}{sorted(unknown)[0]} "
                          f"(known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        default = _default(f)
        if f.name in data:
            kwargs[f.name] = coerce(hints[f.name], data[f.name], key, default)
        elif default is not dataclasses.MISSING:
            kwargs[f.name] = default
        else:
            raise ConfigError(f"config: {key} is missing")
    return cls(**kwargs)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def coerce(hint, value, key: str, default):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config: {key} must be a table (got {value!r})")
        _, vt = typing.get_args(hint)
        merged = dict(default) if isinstance(default, dict) else {}
        for k, v in value.items():
            sub_default = merged.get(k)
            if dataclasses.is_dataclass(vt) and merged and sub_default is None:
                # a table of fixed entries (instruments): a new name is a typo, not a new entry
                raise ConfigError(f"config: unknown {key} entry {k!r} (known: {', '.join(sorted(merged))})")
            if dataclasses.is_dataclass(vt) and sub_default is not None:
                # a partial table overrides only the keys it names
                v = {**dataclasses.asdict(sub_default), **v} if isinstance(v, dict) else v
            merged[k] = coerce(vt, v, f"{key}.{k}", sub_default)
        return merged
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"config: {key} must be a list (got {value!r})")
        args = typing.get_args(hint)
        item = args[0] if args else typing.Any
        out = [coerce(item, v, f"{key}[{i}]", None) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config: {key} must be a number (got {value!r})")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config: {key} must be an integer (got {value!r})")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config: {key} must be true or false (got {value!r})")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: {key} must be a string (got {value!r})")
        return value
    return value


# ---- writing a config back as TOML (`cuecast config`) ------------------------------------------------


def to_toml(cfg: Config) -> str:
    """The whole config as TOML that load_config reads back to an equal Config."""
    lines: list[str] = []
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if dataclasses.is_dataclass(value):
            _table(lines, section.name, value)
        elif isinstance(value, dict):  # a table of tables: [instruments.drums], ...
            for name, sub in value.items():
                _table(lines, f"{section.name}.{_key(name)}", sub)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], name: str, obj) -> None:
    lines += ["", f"[{name}]"]
    for f in dataclasses.fields(obj):
        lines.append(f"{f.name} = {_value(getattr(obj, f.name))}")


def _key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else _value(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {type(v).__name__}")
