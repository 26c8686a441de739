"""A private JACK server (dummy driver) for the live tests, and a JACK MIDI receiver that records timing.

Linux containers have no ALSA sequencer; a JACK server with the dummy driver gives real MIDI ports. Each
server gets its own name (JACK_DEFAULT_SERVER), so tests never touch a user's JACK session.

Use the `jack` fixture:  from jack_server import jack  # noqa: F401
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from jack_registry import clear_stale_servers

_count = itertools.count()
TOO_MANY_SERVERS = "too many servers already active"


class RegistryFull(RuntimeError):
    """jackd refused to start: every slot of JACK's shared server registry is taken."""


class JackServer:
    def __init__(self, period: int | None = None, rate: int = 48000, realtime: bool | None = None):
        self.name = f"cuecast-test-{os.getpid()}-{next(_count)}"
        # With real-time scheduling, a 128-frame period (2.7 ms): the tests' receive-time checks allow for the
        # period, and at 32 frames (0.67 ms) the full suite's load on two cores made the dummy driver log hundreds
        # of XRuns per server, where JACK drops the events of a missed cycle (1 in 56 note-ons once, and a stalled
        # clock tick). Without real-time scheduling (a container without CAP_SYS_NICE, as CI was once) clients miss
        # short cycles under load and JACK dropped 2-12% of the events at 32 frames, so such a machine gets 256
        # (5.3 ms). Async mode either way, as users run it: a sync server (-S) stalls every client for its timeout
        # when one dies, which the lost-port tests do on purpose. CUECAST_TEST_JACK_PERIOD overrides.
        self.realtime = can_realtime() if realtime is None else realtime
        self.period = period or int(os.environ.get("CUECAST_TEST_JACK_PERIOD", 128 if self.realtime else 256))
        self.rate = rate
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.gettempdir()) / f"{self.name}.log"
        self._saved_env: dict[str, str | None] = {}

    def env(self) -> dict[str, str]:
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def start(self, timeout: float = 10.0) -> "JackServer":
        try:
            return self._start(timeout)
        except RegistryFull:
            # Killed servers (SIGKILL, a crashed CI job) leave their slots in JACK's shared registry; JACK only
            # reclaims a slot for a server of the same name, and ours are unique. Free the dead ones, once.
            cleared = clear_stale_servers()
            if not cleared:
                raise
            return self._start(timeout)

    def _start(self, timeout: float) -> "JackServer":
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["jackd", "--realtime" if self.realtime else "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **self.env()},
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log.read_text()
                error = RegistryFull if TOO_MANY_SERVERS in text.lower() else RuntimeError
                raise error(f"jackd exited at start: {text[-500:]}")
            r = subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, text=True,
                               env={**os.environ, **self.env()})
            if r.returncode == 0 and "system:" in r.stdout:
                self._set_env()
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not come up within {timeout} s")

    def _set_env(self) -> None:
        for k, v in self.env().items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def ports(self) -> list[str]:
        r = subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, text=True, env={**os.environ, **self.env()})
        return r.stdout.split("\n")


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within grace_s; nothing if it has ended already."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def die_with_parent() -> None:
    """A child (jackd, a cuecast run) ends when the process that started it ends, even by a crash (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def can_realtime() -> bool:
    """Whether this process may use SCHED_FIFO: tried, not guessed (root in a container may lack CAP_SYS_NICE)."""
    try:
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def have_jackd() -> bool:
    return shutil.which("jackd") is not None and shutil.which("jack_lsp") is not None


def serve(period: int | None = None):
    """A module's JACK server, started and stopped around its tests (skips when jackd is missing)."""
    if not have_jackd():
        pytest.skip("jackd is not installed (Debian: apt-get install jackd2): the live tests need a JACK server")
    server = JackServer(period=period).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jack():
    yield from serve()


RECEIVER_SCRIPT = r"""
import json, sys, threading, time
import rtmidi

client, port = sys.argv[1], sys.argv[2]
lock = threading.Lock()
state = {"midi": None, "t": 0.0}
buf = []


def open_port():
    m = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, client, queue_size_limit=16384)
    m.ignore_types(sysex=True, timing=False, active_sense=True)
    m.open_virtual_port(port)
    return m


def take():
    while state["midi"] is not None:
        x = state["midi"].get_message()
        if x is None:
            return
        state["t"] += x[1]
        buf.append((state["t"], x[0]))


def poll():
    while True:
        with lock:
            take()
        time.sleep(0.002)


state["midi"] = open_port()
threading.Thread(target=poll, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    with lock:
        take()
        if cmd == "close_port":
            state["midi"].close_port()
            state["midi"].delete()
            state["midi"] = None
        elif cmd == "reopen":
            state["midi"] = open_port()
        elif cmd == "quit":
            if state["midi"] is not None:
                state["midi"].close_port()
                state["midi"].delete()
            print(json.dumps(buf), flush=True)
            break
        print(json.dumps(buf), flush=True)
        buf.clear()
"""


class ReceiverCrashed(RuntimeError):
    pass


class JackReceiver:
    """A JACK MIDI input port that keeps every message with its receive time.

    Times come from RtMidi's JACK process callback (jack_get_time deltas, microseconds), so they are the
    receiver's view and are not affected by Python polling the queue late. The port lives in a small
    child process: RtMidi's JACK input has been seen to crash (reading a sender's buffer while that
    sender's client goes away), and such a crash must fail one test, not end the whole test run.
    """

    def __init__(self, client: str = "cuecast-recv", port: str = "in"):
        self.client, self.port_name = client, port
        self._messages: list[tuple[float, list[int]]] = []  # (receiver seconds since the first message, bytes)
        self._lock = threading.Lock()
        self._closed = False
        self._proc = subprocess.Popen([sys.executable, "-c", RECEIVER_SCRIPT, client, port], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        if self._proc.stdout.readline().strip() != "ready":
            raise ReceiverCrashed(f"the JACK MIDI receiver {self.full_name} did not start")

    @property
    def full_name(self) -> str:
        return f"{self.client}:{self.port_name}"

    def _ask(self, cmd: str) -> None:
        with self._lock:
            if self._closed:
                return
            if cmd == "quit":
                self._closed = True
            if self._proc.poll() is not None:
                if cmd == "quit":
                    return
                raise ReceiverCrashed(f"the JACK MIDI receiver died (exit {self._proc.returncode})")
            try:
                self._proc.stdin.write(cmd + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                raise ReceiverCrashed(f"the JACK MIDI receiver died (exit {self._proc.wait()})")
            self._messages.extend((t, list(m)) for t, m in json.loads(line))

    @property
    def messages(self) -> list[tuple[float, list[int]]]:
        self.drain()
        return self._messages

    def drain(self) -> None:
        self._ask("drain")

    def close_port(self) -> None:
        """The port disappears (as when a synth is unplugged): the JACK client goes away."""
        self._ask("close_port")

    def reopen_port(self) -> None:
        """The same port comes back (its clock restarts at the last time seen)."""
        self._ask("reopen")

    def close(self) -> None:
        try:
            self._ask("quit")
        except ReceiverCrashed:
            pass
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    # ---- checks ----
    def notes(self) -> list[tuple[float, int, int, int]]:
        """(time, status, data1, data2) of note and controller messages."""
        return [(t, m[0], m[1], m[2] if len(m) > 2 else 0) for t, m in self.messages if 0x80 <= m[0] < 0xC0]

    def unmatched(self, strict: bool = False) -> set[tuple[int, int]]:
        """(channel, pitch) of note-ons that nothing ended.

        A note is ended by its note-off, or (unless strict) by an all-notes-off (CC 123) on its channel, as
        the MIDI spec has it: JACK itself drops the odd event when a cycle is missed, and the panic's
        all-notes-off is there for exactly that.
        """
        sounding: set[tuple[int, int]] = set()
        for _, st, d1, d2 in self.notes():
            kind, ch = st & 0xF0, st & 0x0F
            if kind == 0x90 and d2 > 0:
                sounding.add((ch, d1))
            elif kind == 0x80 or (kind == 0x90 and d2 == 0):
                sounding.discard((ch, d1))
            elif kind == 0xB0 and d1 == 123 and not strict:
                sounding = {k for k in sounding if k[0] != ch}
        return sounding

    def note_ons(self) -> int:
        return sum(1 for _, st, _, d2 in self.notes() if st & 0xF0 == 0x90 and d2 > 0)

    def clock_times(self) -> list[float]:
        return [t for t, m in self.messages if m[0] == 0xF8]

    def tick_grid(self, period: float) -> tuple[list[int], list[float]]:
        """Clock ticks placed on their grid: (tick index, receive time), counting from the first tick.

        Each tick's index comes from the time since the one before, so a tick JACK dropped in a missed
        cycle does not shift every later index. A late tick followed at once by the next is a stall (a busy
        machine held the sender or the receiver back, and the queued ticks then came together): nothing was
        dropped, and counting the long gap as missed ticks would shift every later index by one.
        """
        times = self.clock_times()
        gaps = np.diff(times)
        ks = [0]
        for i, gap in enumerate(gaps):
            missed = max(0, round(gap / period) - 1)
            if missed and i + 1 < len(gaps) and gaps[i + 1] < 0.5 * period:
                missed = 0  # late, with the next tick queued right behind it: a stall (sender or receiver), not a drop
            ks.append(ks[-1] + 1 + missed)
        return ks, times

    def has(self, status: int) -> bool:
        return any(m[0] == status for _, m in self.messages)

    def controllers(self, cc: int) -> set[int]:
        """Channels that got controller `cc`."""
        return {st & 0x0F for _, st, d1, _ in self.notes() if st & 0xF0 == 0xB0 and d1 == cc}
