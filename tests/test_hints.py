"""Cut hints over a real mosquitto broker, a real OSC UDP socket and an obs-websocket v5 server on loopback."""

import asyncio
import base64
import hashlib
import json
import shutil
import socket
import subprocess
import time

import pytest

from cuecast.streams.hints import HintError, hint_from_payload, mqtt_hints, obs_hints, osc_hints


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clock:
    """now_media() for the tests: media time that we move by hand."""

    def __init__(self, t=10.0):
        self.t = t

    def __call__(self):
        return self.t


async def take(hints, n: int, got: list) -> list:
    """Append the first n hints to `got` (visible to the test while it waits) and stop listening."""
    async for b in hints:
        got.append(b)
        if len(got) == n:
            break
    return got


def test_payload_mapping():
    assert hint_from_payload(b'{"in": 1.5}', 10.0, "mqtt").t == 11.5
    assert hint_from_payload('{"t": 42.0, "confidence": 0.5}', 10.0, "mqtt").confidence == 0.5
    assert hint_from_payload(b"2", 10.0, "mqtt").t == 12.0
    b = hint_from_payload(b"", 10.0, "mqtt")
    assert (b.t, b.kind, b.source, b.decided_at) == (10.0, "hint", "mqtt", 10.0)
    for bad in (b"soon", b'{"when": 1}', b"[1, 2]", b'{"in": 1e9}', b'{"t": 1, "confidence": 3}'):
        with pytest.raises(ValueError):
            hint_from_payload(bad, 10.0, "mqtt")


@pytest.fixture
def mosquitto(tmp_path):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if shutil.os.path.exists("/usr/sbin/mosquitto") else None)
    if exe is None:
        pytest.skip("mosquitto binary not installed (Debian package `mosquitto`)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("mosquitto did not start")
    yield port
    proc.terminate()
    proc.wait(5)


def test_mqtt_hints_through_a_real_broker(mosquitto):
    import aiomqtt

    async def run():
        clock, errors, ready = Clock(), [], asyncio.Event()
        got = []

        task = asyncio.create_task(take(mqtt_hints("127.0.0.1", mosquitto, clock, on_error=errors.append,
                                                   ready=ready), 2, got))
        await asyncio.wait_for(ready.wait(), 5)
        async with aiomqtt.Client("127.0.0.1", port=mosquitto) as pub:
            await pub.publish("cuecast/cut", b'{"in": 2.0}')
            while not got:  # the hint is timed when it arrives: move the clock only after
                await asyncio.sleep(0.01)
            await pub.publish("cuecast/cut", b"not a hint")
            clock.t = 20.0
            await pub.publish("cuecast/cut", b'{"t": 25.5}')
        await asyncio.wait_for(task, 5)
        return got, errors

    got, errors = asyncio.run(run())
    assert [(b.t, b.source, b.kind) for b in got] == [(12.0, "mqtt", "hint"), (25.5, "mqtt", "hint")]
    assert len(errors) == 1 and "skipped" in errors[0]


def test_mqtt_unreachable_broker_is_one_line_error():
    async def run():
        async for _ in mqtt_hints("127.0.0.1", free_port(), Clock()):
            pass

    with pytest.raises(HintError, match="MQTT broker"):
        asyncio.run(run())


def test_osc_hints_over_udp():
    from pythonosc.udp_client import SimpleUDPClient

    port = free_port(socket.SOCK_DGRAM)

    async def run():
        clock, ready, got, errors = Clock(5.0), asyncio.Event(), [], []

        task = asyncio.create_task(take(osc_hints("127.0.0.1", port, clock, on_error=errors.append, ready=ready),
                                        3, got))
        await asyncio.wait_for(ready.wait(), 5)
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/cuecast/cut", 1.25)
        client.send_message("/cuecast/cut_at", "garbage")
        client.send_message("/cuecast/cut_at", 9.0)
        client.send_message("/cuecast/cut", [])
        await asyncio.wait_for(task, 5)
        return got, errors

    got, errors = asyncio.run(run())
    assert [(b.t, b.source) for b in got] == [(6.25, "osc"), (9.0, "osc"), (5.0, "osc")]
    assert len(errors) == 1


def expected_auth(password, salt, challenge):
    # obs-websocket v5 protocol documentation, "Creating an authentication string"
    s1 = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((s1 + challenge).encode()).digest()).decode()


async def fake_obs(password, script, seen):
    """A small obs-websocket v5 server: Hello with auth, Identify check, one request type, scripted events."""
    from websockets.asyncio.server import serve

    async def handler(ws):
        salt, challenge = "c2FsdHNhbHQ=", "Y2hhbGxlbmdl"
        await ws.send(json.dumps({"op": 0, "d": {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1,
                                                 "authentication": {"challenge": challenge, "salt": salt}}}))
        ident = json.loads(await ws.recv())
        seen.append(ident)
        if ident["op"] != 1 or ident["d"].get("authentication") != expected_auth(password, salt, challenge):
            await ws.close(4009, "Authentication failed.")
            return
        await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
        durations = iter([300, 1000])
        async def answer():
            async for raw in ws:
                req = json.loads(raw)
                seen.append(req)
                if req["op"] == 6 and req["d"]["requestType"] == "GetCurrentSceneTransition":
                    await ws.send(json.dumps({"op": 7, "d": {
                        "requestType": "GetCurrentSceneTransition", "requestId": req["d"]["requestId"],
                        "requestStatus": {"result": True, "code": 100},
                        "responseData": {"transitionName": "Fade", "transitionKind": "fade_transition",
                                         "transitionFixed": False, "transitionDuration": next(durations)}}}))
        reader = asyncio.create_task(answer())
        for step in script:
            await asyncio.sleep(0.05)
            await ws.send(json.dumps({"op": 5, "d": step}))
        await asyncio.sleep(0.3)
        reader.cancel()

    return await serve(handler, "127.0.0.1", 0)


def test_obs_scene_transitions_become_hints():
    script = [
        {"eventType": "SceneTransitionStarted", "eventIntent": 16, "eventData": {"transitionName": "Fade"}},
        {"eventType": "CurrentSceneTransitionDurationChanged", "eventIntent": 16, "eventData": {"transitionDuration": 500}},
        {"eventType": "SceneTransitionStarted", "eventIntent": 16, "eventData": {"transitionName": "Fade"}},
        {"eventType": "CurrentSceneTransitionChanged", "eventIntent": 16, "eventData": {"transitionName": "Slow"}},
        {"eventType": "SceneTransitionStarted", "eventIntent": 16, "eventData": {"transitionName": "Slow"}},
    ]

    async def run():
        seen = []
        server = await fake_obs("s3cret", script, seen)
        port = server.sockets[0].getsockname()[1]
        got = await take(obs_hints(f"ws://127.0.0.1:{port}", Clock(3.0), password="s3cret", delay=0.2), 3, [])
        server.close()
        return got, seen

    got, seen = asyncio.run(run())
    assert seen[0]["d"]["eventSubscriptions"] & (1 << 4)  # subscribed to transition events
    assert all(b.source == "obs" and b.kind == "hint" and b.t == pytest.approx(3.2) for b in got)
    assert [round(b.end - b.start, 3) for b in got] == [0.3, 0.5, 1.0]


def test_obs_wrong_password_and_no_server():
    async def wrong():
        server = await fake_obs("right", [], [])
        port = server.sockets[0].getsockname()[1]
        try:
            async for _ in obs_hints(f"ws://127.0.0.1:{port}", Clock(), password="wrong"):
                pass
        finally:
            server.close()

    with pytest.raises(HintError, match="password"):
        asyncio.run(wrong())

    async def nobody():
        async for _ in obs_hints(f"ws://127.0.0.1:{free_port()}", Clock()):
            pass

    with pytest.raises(HintError, match="cannot reach OBS"):
        asyncio.run(nobody())
