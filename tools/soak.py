"""Soak test: `cuecast live --loop` for a long time into a JACK receiver, watching both processes.

Samples the engine's and the sender's resident memory (RSS), threads and open file descriptors every
--every seconds, counts note-ons and note-offs at the receiver as they arrive (so a note left sounding
is seen), and fits a straight line to each RSS series: the slope says whether memory grows with time.
The first --warmup minutes are left out of the fit (models load, caches and fixed-size rings fill).

    nice -n 10 .venv/bin/python tools/soak.py --minutes 60 --out runs/soak      # then read runs/soak/summary.json

Writes OUT/samples.csv (one row per sample), OUT/summary.json and OUT/engine.log (the engine's stderr).

The receiver is JACK's own MIDI monitor, jack_midi_dump (jackd2's example clients, a C client) where it is installed,
else the tests' rtmidi receiver (tests/jack_server.py). RtMidi's JACK input has crashed mid-soak (session 10, after
43 minutes), which leaves a run without its end-of-run stuck-note count.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from jack_server import JackReceiver, JackServer, stop_process  # noqa: E402


def proc_stats(pid: int) -> dict | None:
    """RSS (MB), threads and open fds of a process, from /proc; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:
        return None  # a zombie: it has ended
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]), "fds": fds}


def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            out.extend(int(x) for x in text)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def sender_of(engine_pid: int) -> int | None:
    for c in children(engine_pid):
        try:
            if "child_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace"):
                return c
        except FileNotFoundError:
            continue
    return None


class NoteCounter:
    """Counts what arrives at the receiver and keeps the set of keys sounding (ended by a note-off, or by
    an all-notes-off on the channel, as the MIDI spec has it)."""

    def __init__(self) -> None:
        self.ons = self.offs = self.all_off = self.programs = 0
        self.sounding: dict[tuple[int, int], int] = {}
        self.max_sounding = 0

    def take(self, messages) -> None:
        for _, m in messages:
            st = m[0]
            kind, ch = st & 0xF0, st & 0x0F
            if kind == 0x90 and len(m) > 2 and m[2] > 0:
                self.ons += 1
                self.sounding[(ch, m[1])] = self.sounding.get((ch, m[1]), 0) + 1
            elif kind == 0x80 or (kind == 0x90 and len(m) > 2 and m[2] == 0):
                self.offs += 1
                self.sounding.pop((ch, m[1]), None)
            elif kind == 0xB0 and len(m) > 1 and m[1] == 123:
                self.all_off += 1
                self.sounding = {k: v for k, v in self.sounding.items() if k[0] != ch}
            elif kind == 0xC0:
                self.programs += 1
        self.max_sounding = max(self.max_sounding, len(self.sounding))


class MidiDump:
    """A JACK MIDI input read through jack_midi_dump: one line per message, `   0: 90 3c 64 note on (channel  0): ...`.
    A reader thread keeps the parsed messages until `take`; lines that are not a message (the monitor's own notes,
    e.g. a ring-buffer overflow) are counted and kept for the summary."""

    def __init__(self, client: str, env: dict[str, str]):
        self.full_name = f"{client}:input"
        self._messages: list[tuple[float, list[int]]] = []
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", client], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10.0
        while client + ":input" not in subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jack_midi_dump did not open {self.full_name}")
            time.sleep(0.1)

    def _read(self) -> None:
        for line in self._proc.stdout:
            msg = parse_dump_line(line)
            with self._lock:
                if msg is not None:
                    self._messages.append((time.monotonic(), msg))
                elif line.strip():
                    self.other.append(line.strip())

    def take(self) -> list[tuple[float, list[int]]]:
        with self._lock:
            got, self._messages = self._messages, []
        return got

    def close(self) -> None:
        stop_process(self._proc)
        self._reader.join(5)


def parse_dump_line(line: str) -> list[int] | None:
    """The MIDI bytes of one jack_midi_dump line (`time: hex bytes [description]`); None for any other line."""
    head, sep, rest = line.partition(":")
    if not sep or not head.strip().lstrip("-").isdigit():
        return None
    out = []
    for tok in rest.split():
        if len(tok) != 2 or not all(c in string.hexdigits for c in tok):
            break
        out.append(int(tok, 16))
    return out if out and out[0] >= 0x80 else None


class RtmidiReceiver:
    """The tests' rtmidi receiver behind MidiDump's two calls."""

    def __init__(self, client: str):
        self._rx = JackReceiver(client=client)
        self.full_name, self.other = self._rx.full_name, []

    def take(self) -> list[tuple[float, list[int]]]:
        self._rx.drain()
        got, self._rx._messages = self._rx._messages, []  # counted: the soak keeps numbers, not an hour of messages
        return got

    def close(self) -> None:
        self._rx.close()


def slope_per_10min(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over ts (seconds), in units per 10 minutes."""
    n = len(ts)
    if n < 3:
        return float("nan")
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 600.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else float("nan")


def make_clip(path: Path) -> Path:
    from cuecast.testmedia.video import make_test_video

    shots = [(4.0, (230, 190, 120), 1.0), (3.0, (40, 50, 90), 0.0), (5.0, (220, 40, 40), 2.0),
             (2.5, (30, 160, 60), 0.0), (6.0, (200, 200, 210), 1.0), (4.5, (20, 20, 30), 0.5)]
    make_test_video(path, shots, fps=25, size=(320, 180), audio_hz=220)
    return path


def run(a) -> dict:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = Path(a.source) if a.source else make_clip(out / "soak_clip.mp4")
    server = JackServer(period=64).start()
    rx = MidiDump("soak-rx", {**os.environ, **server.env()}) if shutil.which("jack_midi_dump") else RtmidiReceiver("soak-rx")
    counter = NoteCounter()
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", "--source", f"file:{clip}", "--loop",
           "--midi-out", f"jack:{rx.full_name}", "--duration", str(a.minutes * 60), "-q"]
    if a.config:
        cmd += ["--config", a.config]
    log = open(out / "engine.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **server.env()})
    rows: list[dict] = []
    sender = None
    try:
        with open(out / "samples.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "engine_rss_mb", "engine_threads", "engine_fds", "sender_rss_mb", "sender_threads",
                        "sender_fds", "note_ons", "note_offs", "sounding"])
            while proc.poll() is None:
                time.sleep(a.every)
                sender = sender or sender_of(proc.pid)
                e, s = proc_stats(proc.pid), proc_stats(sender) if sender else None
                counter.take(rx.take())
                if e is None:
                    break
                row = {"t": time.monotonic() - started, "engine": e, "sender": s,
                       "ons": counter.ons, "offs": counter.offs, "sounding": len(counter.sounding)}
                rows.append(row)
                w.writerow([f"{row['t']:.1f}", f"{e['rss_mb']:.2f}", e["threads"], e["fds"],
                            f"{s['rss_mb']:.2f}" if s else "", s["threads"] if s else "", s["fds"] if s else "",
                            counter.ons, counter.offs, len(counter.sounding)])
                f.flush()
                print(f"\rsoak: {row['t'] / 60:5.1f} of {a.minutes:g} min, engine {e['rss_mb']:.0f} MB, sender "
                      f"{s['rss_mb'] if s else float('nan'):.0f} MB, {counter.ons} notes on / {counter.offs} off, "
                      f"{len(counter.sounding)} sounding ", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        proc.wait(timeout=120)
        time.sleep(0.5)
        counter.take(rx.take())
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        rx.close()
        server.stop()
        log.close()
    tail = (out / "engine.log").read_text().strip().splitlines()
    summary = summarise(a, rows, counter, proc.returncode, tail[-1] if tail else "")
    return {**summary, "receiver": type(rx).__name__, "receiver_other_lines": rx.other[:20]}


def summarise(a, rows: list[dict], counter: NoteCounter, exit_code: int, last_line: str) -> dict:
    fit = [r for r in rows if r["t"] >= a.warmup * 60]
    summary = {"minutes": a.minutes, "warmup_min": a.warmup, "samples": len(rows), "exit": exit_code,
               "note_ons": counter.ons, "note_offs": counter.offs, "all_notes_off": counter.all_off,
               "stuck_notes": sorted(counter.sounding), "engine_summary": last_line}
    for who in ("engine", "sender"):
        pts = [(r["t"], r[who]) for r in fit if r[who]]
        every = [r[who] for r in rows if r[who]]
        if not pts:
            continue
        summary[who] = {
            "rss_mb_first": round(every[0]["rss_mb"], 1), "rss_mb_last": round(every[-1]["rss_mb"], 1),
            "rss_mb_max": round(max(x["rss_mb"] for x in every), 1),
            "rss_slope_mb_per_10min": round(slope_per_10min([t for t, _ in pts], [x["rss_mb"] for _, x in pts]), 3),
            "threads_min_max": [min(x["threads"] for x in every), max(x["threads"] for x in every)],
            "fds_min_max": [min(x["fds"] for x in every), max(x["fds"] for x in every)],
        }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="how long cuecast live runs (default 60)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the slope fit (default 5)")
    p.add_argument("--source", help="video file to loop (default: a 25 s synthetic clip with cuts and sound)")
    p.add_argument("--config", help="config preset or file for cuecast live")
    p.add_argument("--out", default="runs/soak", help="folder for samples.csv, summary.json, engine.log")
    a = p.parse_args()
    summary = run(a)
    Path(a.out, "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
