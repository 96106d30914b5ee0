"""Gladia's view of a session, cut down to what its owner may see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The callback URL carries a capability; custom_metadata and post_session_metadata are the
# broker's and Gladia's bookkeeping, not the user's.
_BROKER_FIELDS = ("custom_metadata", "post_session_metadata")
_REQUEST_FIELDS = ("callback_config", "callback", "custom_metadata")


def public_result(session: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `GET /v2/live/{id}` without the callback URL or broker metadata."""
    result = {key: value for key, value in session.items() if key not in _BROKER_FIELDS}
    params = result.get("request_params")
    if isinstance(params, Mapping):
        result["request_params"] = {
            key: value for key, value in params.items() if key not in _REQUEST_FIELDS
        }
    return result
