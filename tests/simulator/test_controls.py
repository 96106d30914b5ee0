"""The /_simulator controls: recorded calls, reset, inspection, deliveries; all behind the key."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from tests.simulator.conftest import API_KEY, InProcess, LiveSimulator, eventually


async def test_every_rest_call_is_recorded_in_order(sim: InProcess) -> None:
    await sim.client.post(
        "/v2/live?region=eu-west", json={"channels": 2}, headers={"x-gladia-version": "SdkPython/2"}
    )
    await sim.client.get("/v2/live", params={"limit": 5})
    await sim.client.get("/_simulator/calls")

    calls = (await sim.client.get("/_simulator/calls")).json()["calls"]

    assert [(c["method"], c["path"], c["query"]) for c in calls] == [
        ("POST", "/v2/live", "region=eu-west"),
        ("GET", "/v2/live", "limit=5"),
    ]
    assert calls[0]["json"] == {"channels": 2}
    assert calls[0]["headers"]["x-gladia-key"] == API_KEY
    assert calls[0]["headers"]["x-gladia-version"] == "SdkPython/2"
    assert calls[1]["json"] is None
    assert sim.state.calls[0].json == {"channels": 2}


async def test_refused_calls_are_recorded_too(sim: InProcess) -> None:
    await sim.client.post("/v2/live", content=b"not json", headers={"x-gladia-key": "wrong"})

    [call] = sim.state.calls
    assert (call.method, call.json, call.headers["x-gladia-key"]) == ("POST", None, "wrong")


async def test_reset_forgets_sessions_calls_and_faults(sim: InProcess) -> None:
    await sim.create()
    sim.state.inject_fault("status", status=500)

    response = await sim.client.post("/_simulator/reset")

    assert response.status_code == 204
    assert sim.state.sessions == {}
    assert sim.state.calls == []
    assert (await sim.client.get("/v2/live")).status_code == 200


async def test_reset_closes_live_sockets_with_going_away(live: LiveSimulator) -> None:
    created = await live.create()
    async with connect(created["url"]) as ws:
        await ws.send(b"\x00" * 320)
        await ws.recv()
        live.state.reset()
        await ws.wait_closed()

    assert ws.close_code == 1001
    assert live.state.sessions == {}


async def test_a_session_can_be_inspected(sim: InProcess) -> None:
    created = await sim.create({"channels": 2})

    body = (await sim.client.get(f"/_simulator/sessions/{created['id']}")).json()

    assert body["id"] == created["id"]
    assert (body["status"], body["bytes_received"], body["connected"]) == ("queued", 0, False)
    assert body["request_params"]["channels"] == 2
    assert body["utterances"] == [] and body["messages"] == []


async def test_deliveries_are_listed_once_settled(sim: InProcess) -> None:
    created = await sim.create(
        {"callback": True, "callback_config": {"url": "http://127.0.0.1:9/x"}}
    )
    await eventually(lambda: len(sim.state.deliveries) == 1, what="the delivery to settle")

    deliveries = (await sim.client.get("/_simulator/deliveries")).json()["deliveries"]

    assert deliveries == [
        {
            "kind": "callback",
            "session_id": created["id"],
            "event": "live.start_session",
            "url": "http://127.0.0.1:9/x",
            "attempts": 4,
            "delivered": False,
            "status_code": None,
        }
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_simulator/calls"),
        ("POST", "/_simulator/reset"),
        ("POST", "/_simulator/faults"),
        ("GET", "/_simulator/faults"),
        ("GET", "/_simulator/deliveries"),
        ("GET", "/_simulator/sessions/x"),
        ("POST", "/_simulator/sessions/x/disconnect"),
    ],
)
async def test_every_control_requires_the_key(sim: InProcess, method: str, path: str) -> None:
    response = await sim.client.request(method, path, headers={"x-gladia-key": "nope"})

    assert response.status_code == 401


async def test_disconnect_validates_its_code_and_session(sim: InProcess) -> None:
    created = await sim.create()

    unknown = await sim.client.post("/_simulator/sessions/nope/disconnect")
    bad_code = await sim.client.post(f"/_simulator/sessions/{created['id']}/disconnect?code=99")
    no_socket = await sim.client.post(f"/_simulator/sessions/{created['id']}/disconnect?code=4500")

    assert (unknown.status_code, bad_code.status_code, no_socket.status_code) == (404, 400, 409)


async def test_unknown_routes_answer_with_gladias_envelope(sim: InProcess) -> None:
    missing = await sim.client.get("/v2/nothing")
    wrong_method = await sim.client.put("/v2/live")

    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    assert (
        wrong_method.status_code == 405 and wrong_method.json()["message"] == "Method Not Allowed"
    )
