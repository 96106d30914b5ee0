"""What Gladia posts to the broker: per-session callbacks and signed account webhooks."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.errors import NotFound, UnverifiedWebhook, WebhookRejected
from broker.events.callbacks import parse_webhook
from broker.store.events import Outcome
from broker.web.http import read_body
from broker.web.resources import resources

logger = logging.getLogger("broker.callbacks")


async def receive_callback(request: Request) -> Response:
    """Verify the capability, then store the event; 202 while the create is still settling."""
    found = resources(request)
    binding = found.capabilities.verify(request.path_params["capability"])
    body = await read_body(request, found.settings.callback_max_body_bytes)
    outcome = await found.intake.receive_callback(binding, body)
    return Response(status_code=202 if outcome is Outcome.EARLY else 204)


async def receive_webhook(request: Request) -> Response:
    """Verify the signature on the raw body, then store the event once per message id."""
    found = resources(request)
    if not found.webhooks.configured:
        raise NotFound("Account webhooks are not configured")
    body = await read_body(request, found.settings.max_body_bytes)
    try:
        message_id = found.webhooks.verify(request.headers, body, time.time())
    except WebhookRejected:
        logger.warning("an account webhook failed verification")
        raise
    except Exception:
        # Whatever a sender puts in a header, the answer is "not verified", never a 500.
        logger.warning("an account webhook failed verification")
        raise UnverifiedWebhook() from None
    await found.intake.receive_webhook(message_id, parse_webhook(body))
    return Response(status_code=204)


routes = [
    Route("/v1/callbacks/{capability}", receive_callback, methods=["POST"]),
    Route("/v1/webhooks/gladia", receive_webhook, methods=["POST"]),
]
