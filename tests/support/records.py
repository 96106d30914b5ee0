"""A session record as the broker stores it after a create, for tests that write one directly."""

from __future__ import annotations

from broker.store.session_record import SessionRecord


def session_record(
    session_id: str,
    owner: str,
    request_id: str,
    *,
    status: str = "created",
    url: str | None = None,
) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        owner=owner,
        url=url or f"wss://gladia.test/v2/live?token=t-{session_id}",
        created_at="2026-11-25T10:00:00.000Z",
        expires_at="2026-11-25T13:00:00.000Z",
        status=status,
        messages_config={"receive_acknowledgments": True},
        request_id=request_id,
    )
