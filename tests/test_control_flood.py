"""A flood of cut hints (1,000 in a second, over MQTT and OSC, through the control topics and the hint sources)
while the engine plays to a real JACK port: it keeps time, boundaries stay bounded, nothing sticks."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time

import numpy as np
import pytest
from control_rig import broker, clip, free_port, note_ons, run_engine, wait_until  # noqa: F401 - fixtures
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture

from cuecast.engine.hints import HINT_BURST, HINT_RATE

PREFIX = "test/flood"
N = 1000


@pytest.fixture
def rx(jack):  # noqa: F811
    r = JackReceiver(client=f"fl{time.monotonic_ns() % 10**9}")
    yield r
    r.close()


def test_a_thousand_hints_in_a_second(clip, rx, broker):  # noqa: F811
    import aiomqtt
    from pythonosc.udp_client import SimpleUDPClient

    osc_in, hint_osc = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rng = random.Random(1)

    async def scenario(engine, remote, clock):
        states: list[float] = []
        async with aiomqtt.Client("127.0.0.1", broker.port) as mq:
            await mq.subscribe(f"{PREFIX}/state")

            async def watch():
                async for _ in mq.messages:
                    states.append(time.monotonic())
            watcher = asyncio.create_task(watch())
            assert await wait_until(lambda: engine.state.boundaries >= 2 and len(states) > 3, 30)
            before = len(engine.timeline.boundaries)
            osc_a, osc_b = SimpleUDPClient("127.0.0.1", osc_in), SimpleUDPClient("127.0.0.1", hint_osc)
            t0 = time.monotonic()
            for i in range(N):  # four ways in, a quarter each, spread over one second
                ahead = round(rng.uniform(0.0, 4.0), 3)
                way = i % 4
                if way == 0:
                    await mq.publish(f"{PREFIX}/set/cut", json.dumps({"in": ahead}).encode())
                elif way == 1:
                    await mq.publish("cuecast/cut", json.dumps({"in": ahead}).encode())
                elif way == 2:
                    osc_a.send_message("/cuecast/set/cut", [ahead])
                else:
                    osc_b.send_message("/cuecast/cut", [ahead])
                if i % 50 == 49:
                    await asyncio.sleep(max(0.0, t0 + (i + 1) / N - time.monotonic()))
            t1 = time.monotonic()
            gate = engine.control.gate
            seen = lambda: sum(gate.dropped.values()) + len(engine.timeline.boundaries) - before  # noqa: E731
            drained = await wait_until(lambda: seen() >= 0.95 * N, 10)
            t_drained = time.monotonic()
            await asyncio.sleep(4.0)  # the hints a few seconds ahead come due
            watcher.cancel()
            return t0, t1, t_drained, drained, before, dict(gate.dropped), states

    run = run_engine(clip, [f"jack:{rx.full_name}"], scenario, overrides={
        "control.mqtt": f"mqtt://127.0.0.1:{broker.port}/{PREFIX}", "control.osc_in": f"127.0.0.1:{osc_in}",
        "hints.mqtt": f"127.0.0.1:{broker.port}", "hints.osc": f"127.0.0.1:{hint_osc}"})
    t0, t1, t_drained, drained, before, dropped, states = run.result
    hints = [b for b in run.engine.timeline.boundaries[before:] if b.kind == "hint"]
    print(f"{N} hints sent in {t1 - t0:.2f} s; handled {t_drained - t1:.2f} s after the last; "
          f"{len(hints)} became boundaries; dropped {dropped}; {len(run.warnings)} warning lines")
    assert t1 - t0 < 1.5
    assert drained, "hints still waiting seconds after the flood"
    # bounded: no more hint boundaries than the gate's burst plus its rate over the flood and the hints' spread
    assert 1 <= len(hints) <= HINT_BURST + HINT_RATE * (t_drained - t0 + 4.0)
    assert {b.source for b in hints} <= {"mqtt", "osc"}
    # the engine kept time: state went on several times a second, the clock never stalled, notes were on time
    gaps = np.diff([t for t in states if t0 - 1 <= t <= t_drained + 1])
    assert len(gaps) > 5 and gaps.max() < 1.0, f"state stalled for {gaps.max():.2f} s"
    time.sleep(0.05)
    ticks = rx.clock_times()
    assert max(np.diff(ticks)) < 0.1, "the MIDI clock stalled"
    ons = note_ons(run.report, t0, t_drained + 4.0)
    assert len(ons) > 20
    # (a hint for "now" is a cut nobody planned: its chord goes out a few ms after its moment, as any such cut's)
    late = [x for x in run.report.handover_late if x > 0.05]
    assert len(late) <= 0.02 * len(note_ons(run.report)), f"{len(late)} notes reached the sender late"
    # loud, not noisy: a handful of summary lines, not one per hint
    assert 1 <= len(run.warnings) <= 20, run.warnings
    assert rx.unmatched() == set()
