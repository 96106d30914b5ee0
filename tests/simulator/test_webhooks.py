"""Account webhooks: the four lifecycle events, Standard Webhooks / Svix signatures, stable ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from broker.simulator import SimulatorConfig, create_simulator_app
from broker.simulator.delivery import sign_webhook
from tests.simulator.audio import speech
from tests.simulator.conftest import WEBHOOK_SECRET, LiveSimulator, Receiver, eventually
from tests.simulator.wsclient import converse
from tests.support.servers import serve_in_thread

LIFECYCLE = ["live.start_session", "live.start_recording", "live.end_recording", "live.end_session"]


@pytest.fixture
def hooked(config: SimulatorConfig, receiver: Receiver) -> Iterator[LiveSimulator]:
    """A simulator whose account sends webhooks to the receiver."""
    hooked_config = replace(
        config, webhook_url=f"{receiver.url}/webhooks", webhook_secret=WEBHOOK_SECRET
    )
    app = create_simulator_app(hooked_config)
    with serve_in_thread(app) as base_url:
        yield LiveSimulator(base_url, app.state.simulator)


async def test_webhooks_announce_the_lifecycle_signed(
    hooked: LiveSimulator, receiver: Receiver
) -> None:
    created = await hooked.create()

    await converse(created["url"], [speech()])

    await eventually(lambda: len(receiver.accepted) == 4, what="webhooks")
    assert receiver.events() == LIFECYCLE
    verifier = Webhook(WEBHOOK_SECRET)
    for received in receiver.accepted:
        assert received.path == "/webhooks"
        payload = verifier.verify(received.body, received.headers)
        assert payload == {"event": payload["event"], "payload": {"id": created["id"]}}
        svix = {
            h.removeprefix("svix-"): v for h, v in received.headers.items() if h.startswith("svix-")
        }
        standard = {
            h.removeprefix("webhook-"): v
            for h, v in received.headers.items()
            if h.startswith("webhook-")
        }
        assert svix == standard and set(svix) == {"id", "timestamp", "signature"}
    assert len({r.headers["webhook-id"] for r in receiver.accepted}) == 4


async def test_a_webhook_retried_keeps_its_message_id(
    hooked: LiveSimulator, receiver: Receiver
) -> None:
    receiver.failures_left = 1

    await hooked.create()

    await eventually(lambda: len(receiver.accepted) == 1, what="the retried webhook")
    first, second = receiver.attempts
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    Webhook(WEBHOOK_SECRET).verify(second.body, second.headers)


async def test_a_forged_webhook_would_not_verify(hooked: LiveSimulator, receiver: Receiver) -> None:
    await hooked.create()
    await eventually(lambda: len(receiver.accepted) == 1, what="webhook")

    received = receiver.accepted[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(WEBHOOK_SECRET).verify(received.body.replace(b"start", b"end__"), received.headers)


async def test_without_an_endpoint_no_webhook_is_sent(live: LiveSimulator) -> None:
    created = await live.create()

    await converse(created["url"], [speech()])

    assert [r for r in live.state.deliveries if r.kind == "webhook"] == []


@pytest.mark.parametrize(
    "secret", [WEBHOOK_SECRET, "whsec_c2hvcnQ", "c2VjcmV0LXdpdGhvdXQtcHJlZml4"]
)
def test_signatures_are_byte_for_byte_those_of_standardwebhooks(secret: str) -> None:
    body = '{"event":"live.end_session","payload":{"id":"é"}}'
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    ours = sign_webhook(secret, "msg_1", int(moment.timestamp()), body)

    assert ours == Webhook(secret).sign("msg_1", moment, body)
