"""OSC out and in against a real OSC receiver process on loopback, with the engine playing to a real JACK port:
/cuecast/cut arrives when its chord is sent (not when it was decided), beats and mood go out, commands come in."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest
from control_rig import clip, free_port, note_ons, run_engine, wait_until  # noqa: F401 - `clip` is a fixture

from cuecast.control import BoundaryEvent
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture

RECEIVER = r"""
import json, socket, struct, sys, time
from pythonosc.osc_message import OscMessage
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
# the kernel stamps each datagram as it arrives: a busy machine may run this process late, not the stamp
sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
print(sock.getsockname()[1], flush=True)
sock.settimeout(0.2)
out = []
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        data, anc, _, _ = sock.recvmsg(65536, 256)
    except socket.timeout:
        continue
    t = time.monotonic()
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", cdata[:16])
            t = sec + nsec * 1e-9 - (time.time() - time.monotonic())  # on CLOCK_MONOTONIC, as the send times
    m = OscMessage(data)
    if m.address == "/stop":
        break
    out.append([t, m.address, list(m.params)])
print(json.dumps(out), flush=True)
"""


@pytest.fixture
def rx(jack):  # noqa: F811
    r = JackReceiver(client=f"osc{time.monotonic_ns() % 10**9}")
    yield r
    r.close()


def test_osc_out_cut_at_its_chord_and_osc_in_commands(clip, rx):  # noqa: F811
    listen_s = 40.0
    osc_rx = subprocess.Popen([sys.executable, "-c", RECEIVER, str(listen_s)], stdout=subprocess.PIPE, text=True)
    rx_port = int(osc_rx.stdout.readline())
    in_port = free_port(socket.SOCK_DGRAM)
    chords: dict[float, tuple[float, float]] = {}

    async def scenario(engine, remote, clock):
        from pythonosc.osc_message import OscMessage
        from pythonosc.udp_client import SimpleUDPClient

        sub = engine.subscribe(maxsize=100000)

        async def collect():
            async for ev in sub:
                if isinstance(ev, BoundaryEvent):
                    # a re-planned cut's chord replaces its first plan; keep how far ahead the engine knew it
                    chords[round(ev.t, 3)] = (ev.chord_wall, ev.chord_wall - time.monotonic())
        collector = asyncio.create_task(collect())
        assert await wait_until(lambda: engine.state.boundaries >= 5, 30)
        client = SimpleUDPClient("127.0.0.1", in_port)
        client._sock.settimeout(2.0)
        client.send_message("/cuecast/set/mood", [-0.6, 0.5])
        client.send_message("/cuecast/set/intensity", [7.0])  # out of range: refused, answered
        reply = OscMessage(await asyncio.get_running_loop().run_in_executor(None, client._sock.recv, 4096))
        held = await wait_until(lambda: engine.control.hub.latest and abs(engine.control.hub.latest.valence + 0.6) < 1e-6, 2)  # OSC floats are 32-bit
        await asyncio.sleep(1.0)
        t_mute = time.monotonic()
        client.send_message("/cuecast/set/mute", [1])  # silence now; beats and cuts go on
        await asyncio.sleep(2.0)
        t_unmute = time.monotonic()
        client.send_message("/cuecast/set/mute", [0])
        client.send_message("/cuecast/set/generator", ["arranger"])  # a fresh generator takes over
        await asyncio.sleep(2.0)
        collector.cancel()
        return reply, held, engine.control.intensity, t_mute, t_unmute

    run = run_engine(clip, [f"jack:{rx.full_name}"], scenario, lookahead=2.5,
                     overrides={"control.osc_out": f"127.0.0.1:{rx_port}", "control.osc_in": f"127.0.0.1:{in_port}"})
    from pythonosc.udp_client import SimpleUDPClient

    SimpleUDPClient("127.0.0.1", rx_port).send_message("/stop", [])
    got = json.loads(osc_rx.communicate(timeout=10)[0])
    reply, held, intensity, t_mute, t_unmute = run.result
    # OSC in: a command moved the mood; a refused one changed nothing and was answered to its sender
    assert reply.address == "/cuecast/error" and "intensity" in reply.params[0]
    assert held and intensity == 1.0
    # muted within a moment (the command waits for the analysis of the frame in hand), what was handed over too;
    # the beats go on for the VJ rig
    assert not note_ons(run.report, t_mute + 0.3, t_unmute)
    assert [t for t, a, _ in got if a == "/cuecast/beat" and t_mute + 0.3 < t < t_unmute]
    assert note_ons(run.report, t_unmute + 0.7, t_unmute + 2.0)  # and back, from the new generator
    assert not [w for w in run.warnings if "refused" in w and "intensity" not in w]
    # OSC out: every cut arrives when its chord is sent, not when it was decided (a lookahead earlier)
    cuts = [(t, args) for t, addr, args in got if addr == "/cuecast/cut"]
    assert len(cuts) >= 4, got[:20]
    gaps = []
    for arrived, (kind, t) in cuts:
        due, ahead = chords[round(t, 3)]  # when the engine planned the cut's chord to sound
        if t_mute - 0.1 < due < t_unmute + 0.7:
            continue  # muted: the cut is announced, its chord is not played
        if ahead < 0.05:  # the engine itself learned of the cut too late (a machine too busy to keep up)
            print(f"cut at {t:.2f}: planned {ahead * 1000:.0f} ms ahead: not timed")
            continue
        chord = [w for w, *_ in note_ons(run.report, due - 0.003, due + 0.1)]
        assert chord, f"no chord sent for the cut at {t}"
        gaps.append(arrived - chord[0])
        print(f"cut at {t:.2f}: planned {ahead * 1000:.0f} ms ahead, OSC {gaps[-1] * 1000:+.1f} ms after its chord")
    print(f"/cuecast/cut after its chord's send time: {', '.join(f'{g * 1000:+.1f}' for g in gaps)} ms")
    assert len(gaps) >= 3 and all(abs(g) < 0.020 for g in gaps), gaps
    # beats, bars, tempo, the beat phase ramp, and the mood
    addrs = [a for _, a, _ in got]
    for a in ("/cuecast/beat", "/cuecast/bar", "/cuecast/tempo", "/cuecast/phase", "/cuecast/valence", "/cuecast/arousal"):
        assert a in addrs, a
    beats = [(t, args) for t, a, args in got if a == "/cuecast/beat"]
    assert len(beats) > 10 and all(1 <= b <= 4 and bar >= 1 for _, (b, bar) in beats)
    phases = [args[0] for _, a, args in got if a == "/cuecast/phase"]
    assert all(0.0 <= p < 1.0 for p in phases) and max(phases) > 0.8 and min(phases) < 0.2
    assert any(abs(args[0] + 0.6) < 1e-6 for _, a, args in got if a == "/cuecast/valence")
    time.sleep(0.05)
    assert rx.unmatched() == set()
