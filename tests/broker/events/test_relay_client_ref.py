"""The relay names the `client_ref` of the token that created the session, and only then."""

from __future__ import annotations

from broker.settings import Settings
from tests.broker.conftest import Simulator
from tests.broker.events.conftest import (
    Headers,
    Receiver,
    callback_body,
    capability_path,
    in_process,
    relay_settings,
    wait_for,
)
from tests.support.bound_tokens import bound_headers


async def test_relayed_events_carry_the_sessions_client_ref(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver
) -> None:
    async with in_process(relay_settings(settings, receiver)) as broker:
        bound = bound_headers(settings, "alice", client_ref="order-17")
        plain = mint("bob")
        sessions = {}
        for name, headers in (("bound", bound), ("plain", plain)):
            created = await broker.client.post("/v1/sessions", headers=headers, json={})
            sessions[name] = created.json()["id"]
            path = capability_path(simulator, sessions[name])
            body = callback_body(sessions[name], "live.transcript", id="u1", is_final=True)
            assert (await broker.client.post(path, json=body)).status_code == 204

        async def both_delivered() -> bool:
            return len(receiver.ids()) == 2

        await wait_for(both_delivered)
    by_session = {body["session_id"]: body for body in receiver.bodies()}
    assert by_session[sessions["bound"]]["client_ref"] == "order-17"
    assert "client_ref" not in by_session[sessions["plain"]]
