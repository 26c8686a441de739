"""The soak tool's receiver (tools/soak.py): jack_midi_dump's lines read back as MIDI messages, against a real JACK
server, so an hour's stuck-note count does not hang on rtmidi's JACK input (it crashed mid-soak in session 10)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest
from jack_server import have_jackd, jack  # noqa: F401 - `jack` is a fixture

TOOL = Path(__file__).resolve().parent.parent / "tools" / "soak.py"


def soak_tool():
    spec = importlib.util.spec_from_file_location("soak", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dump_lines_parse_to_their_bytes_and_nothing_else():
    parse = soak_tool().parse_dump_line
    assert parse("   0: 90 3c 64 note on  (channel  0): pitch  60, velocity 100\n") == [0x90, 0x3C, 0x64]
    assert parse("  12: b0 7b 00 control change (channel  0): controller 123, value   0") == [0xB0, 0x7B, 0x00]
    assert parse("   0: c1 05") == [0xC1, 0x05]
    assert parse("Cannot read socket fd = 6 err = Success") is None
    assert parse("JackSocketClientChannel read fail") is None
    assert parse("   0: 3c 64") is None  # no status byte: not a message


@pytest.mark.skipif(not have_jackd() or not shutil.which("jack_midi_dump"),
                    reason="jackd2 (with jack_midi_dump) is not installed (Debian: apt-get install jackd2)")
def test_every_note_sent_to_the_dump_receiver_is_counted(jack):
    import rtmidi
    tool = soak_tool()
    rx = tool.MidiDump("soak-test-rx", {**os.environ, **jack.env()})
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="soak-test-tx")
    try:
        out.open_port(next(i for i, n in enumerate(out.get_ports()) if rx.full_name in n))
        counter = tool.NoteCounter()
        for k in range(40):
            out.send_message([0x90 | (k % 4), 48 + k, 90])
            if k % 5:  # every fifth note is left sounding: the counter must see it
                out.send_message([0x80 | (k % 4), 48 + k, 0])
            time.sleep(0.005)
        deadline = time.monotonic() + 5.0
        while counter.ons + counter.offs < 72 and time.monotonic() < deadline:
            counter.take(rx.take())
            time.sleep(0.05)
        assert (counter.ons, counter.offs) == (40, 32)
        assert sorted(counter.sounding) == sorted((k % 4, 48 + k) for k in range(0, 40, 5))
        out.send_message([0xB0, 123, 0])  # all notes off on channel 1 ends its held notes, as the MIDI spec has it
        time.sleep(0.3)
        counter.take(rx.take())
        assert all(ch != 0 for ch, _ in counter.sounding) and counter.all_off == 1
    finally:
        out.close_port()
        rx.close()
