"""Real-time scheduling, engine side: notes in media time -> timed messages for the sender process.

The RealtimeScheduler is a NoteSink: it turns media time into wall time with `wall_of` and hands notes,
tempo changes and cuts to the sender process (engine/sender.py) ahead of their time, as typed messages
(engine/sender_messages.py). The sender sends them at their deadlines and guarantees the note-offs.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Pipe
from typing import Callable, Sequence

from cuecast.engine.sender_messages import (Close, Closed, Cut, Failed, NoteEvent, Notes, OutputState, Priority,
                                            SendReport, Setup, StatusSlot, Tempo, decode, encode)
from cuecast.types import INSTRUMENTS, Instrument, Note, assign_channels

__all__ = ["RealtimeScheduler", "SendReport", "SenderError"]


SEND_TIMEOUT_S = 5.0  # a hand-over to the sender that takes longer means the sender no longer reads


class SenderError(Exception):
    """The sender could not start (a port that does not exist, no JACK server): a one-line reason."""


class RealtimeScheduler:
    """NoteSink for live play: hands notes, tempo and cuts to the sender process, ahead of their time.

    outputs: specs (`rtmidi:NAME`, `virtual:NAME`, `jack:NAME`, `synth`, `none`); wall_of: media time ->
    time.monotonic(); channel_map: instrument -> Instrument; latency_ms: per-output
    offset (positive sends later, to line up with a slower output); link: also lead an Ableton Link
    session with the music's tempo and beat (LinkLeader). Raises SenderError when a port cannot be opened.
    """

    def __init__(self, outputs: Sequence[str], wall_of: Callable[[float], float], channel_map: dict[str, Instrument],
                 clock_out: bool = True, latency_ms: dict[str, float] | Sequence[float] | None = None,
                 record: bool = False, realtime_priority: bool = True, synth_options: dict | None = None,
                 client_name: str = "cuecast", start_timeout: float = 20.0, link: bool = False):
        self.outputs = [str(o) for o in outputs]
        if not self.outputs:
            raise SenderError("no output: give at least one --midi-out (or `none`)")
        if link and importlib.util.find_spec("aalink") is None:
            raise SenderError("Ableton Link needs the aalink package: pip install 'cuecast[link]'")
        self.wall_of = wall_of
        self.instruments = assign_channels(channel_map, INSTRUMENTS)
        # for the sender: instrument -> [channel 0..15 as the wire counts, program, volume or None]
        self.channels = {k: [i.channel - 1, i.program, i.volume] for k, i in self.instruments.items()}
        if isinstance(latency_ms, dict):
            lat = [float(latency_ms.get(o, 0.0)) / 1000 for o in self.outputs]
        else:
            lat = [float(x) / 1000 for x in (latency_ms or [0.0] * len(self.outputs))]
        self.latency_s = lat
        self._next_id = 0
        self._lock = threading.Lock()
        self._closed = False
        self._aborted = False
        self.report: SendReport | None = None
        self._closed_report: SendReport | None = None
        self._report_in = threading.Event()
        # A plain child interpreter (not multiprocessing's spawn, which re-imports the caller's __main__):
        # it gets one end of a socket pair and a small shared status file.
        self._status_file = tempfile.NamedTemporaryFile(prefix="cuecast-sender-", suffix=".status")
        self._status_file.truncate(8 * (StatusSlot.OUTPUTS + len(self.outputs)))
        self._status_map = mmap.mmap(self._status_file.fileno(), 0)
        self._status = memoryview(self._status_map).cast("d")
        self._conn, child = Pipe(duplex=True)
        setup = Setup(self.outputs, lat, self.channels, clock_out, record, realtime_priority, synth_options or {},
                      client_name, self._status_file.name, link)
        fd = child.fileno()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", f"from cuecast.engine.sender import child_main; child_main({fd})"],
            pass_fds=(fd,), stdin=subprocess.DEVNULL)
        child.close()
        self._bound_send_time(SEND_TIMEOUT_S)
        self._send(setup)
        self._wait_ready(start_timeout)
        # The sender's closing report can be larger than the socket's buffer. Read it on a thread of its own:
        # waiting to read it until after the engine stops handing over notes let both sides block on a full
        # socket for ever (the engine then ignored SIGTERM).
        self._reader = threading.Thread(target=self._read_reports, name="cuecast-sender-reports", daemon=True)
        self._reader.start()

    def _bound_send_time(self, seconds: float) -> None:
        """A sender that stops reading (hung in a MIDI backend) must not hang the engine: a send that cannot
        finish within `seconds` fails instead of blocking, and the sender is then taken as gone."""
        try:
            sock = socket.fromfd(self._conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(seconds), 0))
            finally:
                sock.close()  # the duplicate descriptor only; the option stays on the shared socket
        except (OSError, struct.error):
            pass  # a platform without SO_SNDTIMEO keeps blocking sends, as before

    def _read_reports(self) -> None:
        try:
            while True:
                msg = decode(self._conn.recv_bytes())
                if isinstance(msg, Closed):
                    self._closed_report = msg.report
                    return
        except (EOFError, OSError, ValueError):
            pass  # the sender is gone
        finally:
            self._report_in.set()

    def _wait_ready(self, timeout: float) -> None:
        try:
            if not self._conn.poll(timeout):
                self._kill()
                raise SenderError(f"the MIDI sender did not start within {timeout:.0f} s")
            msg = decode(self._conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            self._kill()
            raise SenderError("the MIDI sender process ended while starting") from None
        if isinstance(msg, Failed):
            self._wait_exit(2)
            self._closed = True
            self._conn.close()
            raise SenderError(msg.reason)

    # ---- NoteSink ----
    def tempo(self, t: float, bpm: float, beat: float) -> None:
        self._send(Tempo(self.wall_of(t), float(bpm), float(beat)))

    def notes(self, notes: list[Note]) -> None:
        events = []
        for n in notes:
            events.append(NoteEvent(self.wall_of(n.start), self.wall_of(max(n.end, n.start)), self._channel(n.instrument),
                                    int(n.pitch) & 127, max(1, min(127, int(n.velocity))), self._next_id))
            self._next_id += 1
        if events:
            self._send(Notes(events))

    def cut_at(self, t: float) -> None:
        self._send(Cut(self.wall_of(t)))

    def close(self) -> None:
        """Stop, and leave nothing sounding. Without an error in flight, first play out what is scheduled
        (the engine ends the music with cut_at before it closes); with one, stop at once."""
        if self._closed:
            return
        drain = sys.exc_info()[0] is None and not self._aborted
        self._send(Close(drain))
        self._closed = True
        self.report = self._collect(timeout=(60.0 if drain else 5.0))

    # ---- extras ----
    def abort(self) -> None:
        """Silence everything now (signal handlers call this; it only sends a signal, never blocks)."""
        self._aborted = True
        if self._alive():
            try:
                os.kill(self._proc.pid, signal.SIGUSR1)
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        """close() was called: the sender ends on purpose."""
        return self._closed

    def status(self) -> dict:
        s = self._status
        return {
            "sent": int(s[StatusSlot.SENT]), "late_p99_ms": s[StatusSlot.LATE_P99_MS],
            "late_max_ms": s[StatusSlot.LATE_MAX_MS], "priority": Priority(int(s[StatusSlot.PRIORITY])).label,
            "alive": bool(s[StatusSlot.ALIVE]) and self._alive(), "reconnects": int(s[StatusSlot.RECONNECTS]),
            "clock_bpm": s[StatusSlot.TEMPO], "ticks": int(s[StatusSlot.TICKS]),
            "outputs": [(o, state is OutputState.OK, state.why) for o, state in
                        ((o, OutputState(int(s[StatusSlot.OUTPUTS + i]))) for i, o in enumerate(self.outputs))],
            "losses": int(s[StatusSlot.LOSSES]),
        }

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _channel(self, instrument: str) -> int:
        if instrument not in self.instruments:  # an instrument the generator made up: placed once, by the rule
            self.instruments = assign_channels(self.instruments, [instrument])
        return self.instruments[instrument].channel - 1

    def _send(self, msg) -> None:
        if self._closed or self._aborted:  # after an abort the sender only silences and reports
            return
        with self._lock:
            try:
                self._conn.send_bytes(encode(msg))
            except BlockingIOError:  # SEND_TIMEOUT_S passed with the socket full: the sender stopped reading
                self._aborted = True
                self._kill()  # SIGTERM first: a sender that still runs silences everything on its way out
            except (BrokenPipeError, OSError, EOFError):
                pass  # the sender is gone (it silenced everything on its way out): nothing left to do

    def _collect(self, timeout: float) -> SendReport:
        deadline = time.monotonic() + timeout
        try:
            while not self._report_in.wait(0.05):
                if self._aborted and timeout > 5.0:  # a signal arrived while draining: stop waiting long
                    deadline = min(deadline, time.monotonic() + 5.0)
                if time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            self.abort()
        if not self._wait_exit(3):
            self._kill()
        self._reader.join(timeout=1.0)  # the sender's end is closed now: the reader has seen EOF
        self._conn.close()
        return self._closed_report or SendReport()

    def _alive(self) -> bool:
        return self._proc.poll() is None

    def _wait_exit(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _kill(self) -> None:
        if self._alive():
            self._proc.terminate()  # SIGTERM: the sender silences everything before it goes
            if self._wait_exit(3):
                return
            self._proc.kill()
            self._proc.wait()
