"""Hint sources hardened: loud and recovered failures (a real mosquitto restarted, an obs-websocket server that
sends junk and drops the connection), the gate (past, merged, rate-limited), and start-up errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from control_rig import Broker, broker, free_port  # noqa: F401 - `broker` is a fixture

from cuecast.control import CommandError, parse_command
from cuecast.engine.errors import UserError
from cuecast.engine.hints import HintGate, Warnings, hint_sources
from cuecast.streams.hints import hint_from_payload, mqtt_hints, obs_hints
from cuecast.types import Boundary

BAD = [b'{"in": null}', b'{"t": [1]}', b'{"in": 1e999}', b'{"in": 1' + b"0" * 400 + b"}", b'{"in": 1, "confidence": null}',
       b'{"in": {"deep": 1}}', b"[" * 5000, b"\xff\xfe", b'{"t": "soon"}']


class Lines:
    def __init__(self):
        self.lines = []

    def write(self, s):
        self.lines.extend(x for x in s.splitlines() if x)

    def flush(self):
        pass


def test_payloads_that_used_to_raise_are_skipped_with_a_reason():
    for payload in BAD:
        with pytest.raises(ValueError):
            hint_from_payload(payload, 10.0, "mqtt")
        with pytest.raises(CommandError):
            parse_command("cut", payload)
    assert hint_from_payload(b'{"in": 0.5}', 10.0, "mqtt").t == 10.5


def test_gate_drops_the_past_merges_near_ones_and_limits_the_rate():
    wall = [100.0]
    out = Lines()
    gate = HintGate(0.6, Warnings(stream=out, clock=lambda: wall[0]), rate=1.0, burst=2, clock=lambda: wall[0])
    hint = lambda t: Boundary(t=t, kind="hint", source="osc")  # noqa: E731
    assert not gate.admit(hint(4.0), now=5.0)  # a second ago: dropped
    assert gate.admit(hint(4.95), now=5.0)  # a moment ago (the message took time): lands now
    assert not gate.admit(hint(5.3), now=5.0)  # the same moment again: merged
    assert not gate.admit(hint(7.2), now=5.0, known=[7.0])  # the detector's cut: merged
    assert gate.admit(hint(8.0), now=5.0)
    assert not gate.admit(hint(9.0), now=5.0)  # over the burst
    wall[0] += 1.0
    assert gate.admit(hint(10.0), now=6.0)  # a second later there is room again
    assert gate.dropped == {"past": 1, "merged": 2, "rate": 1}
    # one line per kind of trouble: the second merge within a few seconds is counted, not printed
    assert len(out.lines) == 3 and all(x.startswith("cuecast: warning: ") for x in out.lines)
    for _ in range(50):
        gate.admit(hint(1.0), now=6.0)
    assert len(out.lines) == 3
    gate.warn.flush()  # at the end, what was held back: one line per kind, with its count
    assert len(out.lines) == 5 and any("49 more like it" in x for x in out.lines)


def test_mqtt_hints_survive_a_broker_restart_and_bad_payloads(broker):  # noqa: F811
    import aiomqtt

    async def run():
        errors, ready, got = [], asyncio.Event(), []

        async def listen():
            async for b in mqtt_hints("127.0.0.1", broker.port, lambda: 10.0, on_error=errors.append, ready=ready,
                                      retry=True):
                got.append(b)
        task = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 5)
        async with aiomqtt.Client("127.0.0.1", port=broker.port) as pub:
            for p in BAD:
                await pub.publish("cuecast/cut", p)
            await pub.publish("cuecast/cut", b'{"in": 1.0}')
            await _until(lambda: got)
        ready.clear()
        broker.stop()
        await asyncio.sleep(1.0)
        broker.start()
        await asyncio.wait_for(ready.wait(), 15)  # back, with back-off, by itself
        async with aiomqtt.Client("127.0.0.1", port=broker.port) as pub:
            await pub.publish("cuecast/cut", b'{"in": 2.0}')
            await _until(lambda: len(got) == 2)
        task.cancel()
        return got, errors

    got, errors = asyncio.run(run())
    assert [b.t for b in got] == [11.0, 12.0]
    assert sum("skipped" in e for e in errors) == len(BAD)
    assert any("retrying" in e for e in errors) and any("back on" in e for e in errors)


async def _until(pred, timeout=5.0):
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_obs_junk_is_skipped_and_a_lost_connection_comes_back():
    from websockets.asyncio.server import serve

    connections = []

    async def handler(ws):
        connections.append(ws)
        await ws.send(json.dumps({"op": 0, "d": {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1}}))
        await ws.recv()  # Identify
        await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
        req = json.loads(await ws.recv())
        await ws.send(json.dumps({"op": 7, "d": {"requestType": "GetCurrentSceneTransition",
                                                 "requestId": req["d"]["requestId"],
                                                 "responseData": {"transitionFixed": True}}}))
        for junk in ("not json", "[1, 2]", '{"op": 5, "d": "x"}', '{"op": 5, "d": {"eventType": "CurrentSceneTransitionDurationChanged", "eventData": {"transitionDuration": "long"}}}'):
            await ws.send(junk)
        await ws.send(json.dumps({"op": 5, "d": {"eventType": "SceneTransitionStarted", "eventData": {}}}))
        await asyncio.sleep(0.2)
        if len(connections) == 1:
            await ws.close()  # OBS quits (or restarts) after the first scene change

    async def run():
        server = await serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        errors, got = [], []

        async def listen():
            async for b in obs_hints(f"ws://127.0.0.1:{port}", lambda: 3.0, on_error=errors.append, retry=True):
                got.append(b)
        task = asyncio.create_task(listen())
        await _until(lambda: len(got) == 2, 10)
        task.cancel()
        server.close()
        return got, errors

    got, errors = asyncio.run(run())
    assert len(got) == 2 and all(b.source == "obs" for b in got)
    assert sum("skipped" in e for e in errors) == 8, errors  # four bad frames on each connection
    assert any("retrying" in e for e in errors)


def test_a_configured_source_without_its_extra_is_a_start_up_error(monkeypatch):
    import importlib.util

    from cuecast.engine.config import load_config
    from cuecast.engine.remote import Remote

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("aiomqtt", "pythonosc") else real(name, *a))
    with pytest.raises(UserError, match=r"cuecast\[bridges\]"):
        hint_sources(load_config(None, {"hints.mqtt": "127.0.0.1:1883"}).hints, lambda: 0.0)
    with pytest.raises(UserError, match=r"cuecast\[bridges\]"):
        hint_sources(load_config(None, {"hints.osc": "127.0.0.1:9000"}).hints, lambda: 0.0)
    with pytest.raises(UserError, match=r"cuecast\[bridges\]"):
        Remote(load_config(None, {"control.mqtt": "mqtt://127.0.0.1"}).control)


@pytest.mark.parametrize("flags, says", [
    (["--osc-in", "0.0.0.0:9000"], "token"),
    (["--mqtt", "http://broker"], "mqtt"),
    (["--hints-osc", "nowhere"], "hints.osc"),
])
def test_cli_flags_mirror_the_config_and_refuse_in_one_line(flags, says, tmp_path):
    p = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "live", "--source", str(tmp_path / "none.mp4"),
                        "--midi-out", "none", "-q", *flags], capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("cuecast: error:"), p.stderr[-600:]
    assert says in lines[0]
