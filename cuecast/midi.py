"""MIDI's numbers, in one table: status bytes, controllers, clock resolution.

Channel messages are the status kind OR'ed with the channel (0..15, as the wire counts them).
"""

from __future__ import annotations

from enum import IntEnum

from cuecast.types import DRUM_CHANNEL  # noqa: F401 - 10, as musicians count channels (the wire says 9)


class Status(IntEnum):
    NOTE_OFF = 0x80
    NOTE_ON = 0x90
    CONTROL_CHANGE = 0xB0
    PROGRAM_CHANGE = 0xC0
    PITCH_BEND = 0xE0
    SYSTEM = 0xF0  # at or above: system messages (no channel)
    SONG_POSITION = 0xF2
    CLOCK = 0xF8
    START = 0xFA
    CONTINUE = 0xFB
    STOP = 0xFC


class CC(IntEnum):
    VOLUME = 7
    SUSTAIN = 64
    ALL_SOUND_OFF = 120
    ALL_NOTES_OFF = 123


PPQN = 24  # MIDI clock ticks per quarter note
TICKS_PER_SIXTEENTH = PPQN // 4  # song position counts sixteenths


def kind(status: int) -> int:
    """The message kind of a channel status byte (the channel masked off)."""
    return status & 0xF0


def channel(status: int) -> int:
    return status & 0x0F


def song_position(sixteenths: int) -> bytes:
    return bytes([Status.SONG_POSITION, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F])
