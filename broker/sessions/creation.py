"""One create, the same for every surface: policy → bindings → idempotency → limits → Gladia →
store.

Each Gladia create is billable and Gladia has no idempotency of its own, so once a create may
have reached Gladia it is never sent again blindly: its outcome is settled on the idempotency
claim (when the client sent a key), and an unknown outcome is reconciled through Gladia's list
before any new create.

A token's bindings (`Subject.grant.bindings`) are checked before anything else is spent
(`broker.policy.bindings`); its `max_sessions` uses are taken with the subject's leases and
given back exactly where the leases are, when the create never reached Gladia or Gladia refused
it, and its `max_duration_s` ends the session's URL and leases early (`expires_at`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError

from broker.errors import Conflict, EarlierAttemptCreated, UpstreamError
from broker.events.intake import EventIntake
from broker.gladia.client import GladiaClient
from broker.identity.credentials import Subject
from broker.identity.revocation import PendingRevocation
from broker.policy.bindings import check_bindings
from broker.policy.idempotency import (
    Claim,
    Idempotency,
    Replay,
    Settlement,
    fingerprint,
    validate_key,
)
from broker.policy.init_body import InitRequest, SessionPolicy
from broker.policy.limits import Limits
from broker.sessions.create_writes import CreateWrites
from broker.settings import GLADIA_MAX_SESSION_S
from broker.store.records import SessionStore
from broker.store.session_record import SessionRecord

logger = logging.getLogger("broker.create")


class SessionCreator:
    """Creates live sessions for subjects; every surface's create comes here."""

    def __init__(
        self,
        policy: SessionPolicy,
        idempotency: Idempotency,
        limits: Limits,
        gladia: GladiaClient,
        store: SessionStore,
        writes: CreateWrites,
        intake: EventIntake,
    ) -> None:
        self._policy = policy
        self._idempotency = idempotency
        self._limits = limits
        self._gladia = gladia
        self._store = store
        self._writes = writes
        self._intake = intake

    async def create(
        self,
        subject: Subject,
        client_body: object,
        region: str | None = None,
        idempotency_key: str | None = None,
        revocation: PendingRevocation | None = None,
    ) -> SessionRecord:
        """Create a live session for `subject` from an untrusted body, within every limit.

        `revocation`: the credential's revocation check, when the caller left it to the create
        (made in the admission script, or before an Idempotency-Key is claimed); the caller
        makes it before any other refusal is answered (`PendingRevocation.first`).
        """
        request_id = secrets.token_hex(16)
        init = self._policy.build_init_request(client_body, subject.key, request_id=request_id)
        check_bindings(subject.grant.bindings, client_body, init.body, subject.grant.token_id)
        if idempotency_key is None:
            return await self._create(subject, init, region or init.region, revocation)
        if revocation is not None:
            await revocation.check()  # a replay is answered without admission
        begun = await self._idempotency.begin(
            subject.key,
            validate_key(idempotency_key),
            fingerprint(client_body, region),
            request_id,
        )
        if isinstance(begun, Replay):
            return await self._replayed(subject, begun)
        return await self._create_claimed(subject, init, region or init.region, begun)

    async def _create_claimed(
        self, subject: Subject, init: InitRequest, region: str | None, claim: Claim
    ) -> SessionRecord:
        # How the claim ends if this request fails where it is: reconciling leaves the earlier
        # attempt unknown, a refusal before Gladia frees the key, a send may leave a session behind.
        settlement: Settlement = "unknown"
        value = claim.previous_request_id or init.request_id
        try:
            if claim.previous_request_id is not None and await self._earlier_attempt_created(
                subject, claim.previous_request_id
            ):
                settlement, value = "spent", ""
                raise EarlierAttemptCreated(
                    "Gladia created a session for an earlier attempt with this Idempotency-Key, "
                    "but its answer was lost; the session was discarded. Send the request again "
                    "with a new Idempotency-Key"
                )
            settlement, value = "abandon", ""
            await self._idempotency.renew(claim)
            await self._admit(subject, init.request_id)
            settlement, value = "unknown", init.request_id
            record = await self._send_and_store(subject, init, region)
            settlement, value = "done", record.id
            return record
        except UpstreamError as exc:
            if value == init.request_id and not exc.outcome_unknown:
                settlement = "abandon"  # Gladia refused or was never reached: nothing to reconcile
            raise
        finally:
            try:
                await self._idempotency.settle(claim, settlement, value)
            except Exception as exc:  # the claim times out by itself; the answer must not change
                logger.warning("idempotency claim not settled: %s", type(exc).__name__)

    async def _create(
        self,
        subject: Subject,
        init: InitRequest,
        region: str | None,
        revocation: PendingRevocation | None,
    ) -> SessionRecord:
        await self._admit(subject, init.request_id, revocation)
        return await self._send_and_store(subject, init, region)

    async def _admit(
        self, subject: Subject, request_id: str, revocation: PendingRevocation | None = None
    ) -> None:
        """The create's admission, with its revocation check as the script's guard if pending."""
        refused = await self._limits.admit(
            subject.key,
            request_id,
            token_id=_counted_token(subject),
            max_sessions=subject.grant.bindings.max_sessions,
            guard=revocation.guard_step() if revocation is not None else None,
        )
        if refused:
            assert revocation is not None  # only its guard refuses this way
            revocation.refuse(refused)

    async def _send_and_store(
        self, subject: Subject, init: InitRequest, region: str | None
    ) -> SessionRecord:
        """Gladia's create, then everything the broker keeps of the session."""
        try:
            created = await self._gladia.create_live_session(init.body, region)
        except UpstreamError as exc:
            if not exc.outcome_unknown:
                await self._limits.release_lease(
                    subject.key, init.request_id, token_id=_counted_token(subject)
                )
            # Otherwise the pending leases (and the token's use) stay until they expire: Gladia
            # may have a live session.
            raise
        bindings = subject.grant.bindings
        return await self.keep(
            SessionRecord(
                id=created.id,
                owner=subject.key,
                url=created.url,
                created_at=created.created_at,
                expires_at=_expiry(bindings.max_duration_s),
                status="created",
                messages_config=init.messages_config,
                request_id=init.request_id,
                client_ref=bindings.client_ref,
            ),
            subject,
        )

    async def keep(self, record: SessionRecord, subject: Subject) -> SessionRecord:
        """What follows Gladia's answer: the record, the session's leases, early callbacks."""
        # A session bound to a shorter life frees its leases when the broker stops handing out
        # its URL (its `expires_at`); Gladia still ends it at its own maximum.
        lease_s = subject.grant.bindings.max_duration_s
        written = await self._writes.write(record, subject.id, lease_s=lease_s)
        if written.record is not None:
            raise written.record  # its leases are released already
        # The session is recorded and usable either way. An unconfirmed account lease lapses soon
        # (more permissive for a while, never a second create); an unknown owner leaves only the
        # account webhooks about this session unanswered.
        if written.account_lease is not None:
            logger.warning("account lease not confirmed: %s", type(written.account_lease).__name__)
        if written.session_owner is not None:
            logger.warning("session owner not noted: %s", type(written.session_owner).__name__)
        try:
            await self._intake.take_early(record, written.early)
        except RedisError as exc:
            logger.warning("early callbacks not stored: %s", type(exc).__name__)
        return record

    async def _earlier_attempt_created(self, subject: Subject, request_id: str) -> bool:
        """Whether Gladia holds a session from an attempt whose answer never came back."""
        listed = await self._gladia.list_live_sessions({"broker_request_id": request_id})
        # Gladia's filter is trusted, but checked: only our own metadata counts as a match.
        matches = [
            item
            for item in listed
            if isinstance(item.get("custom_metadata"), dict)
            and item["custom_metadata"].get("broker_request_id") == request_id
            and isinstance(item.get("id"), str)
        ]
        for item in matches:
            # Nobody holds its URL, so nobody can use it: free it at Gladia where Gladia allows.
            try:
                await self._gladia.delete_live_session(item["id"])
            except UpstreamError as exc:
                logger.warning("orphaned session not deleted at Gladia: %s", exc.title)
        # Nothing found: that attempt created nothing, so its use of the token comes back too.
        await self._limits.release_lease(
            subject.key, request_id, token_id=None if matches else _counted_token(subject)
        )
        if matches:
            logger.warning("an earlier create with an unknown outcome had created a session")
        return bool(matches)

    async def _replayed(self, subject: Subject, replay: Replay) -> SessionRecord:
        record = await self._store.load(subject.key, replay.session_id)
        if record is None:
            raise Conflict("The session created with this Idempotency-Key no longer exists")
        if record.has_expired():
            # Its URL is no longer handed out (a token's max_duration_s, or Gladia's maximum).
            raise Conflict("The session created with this Idempotency-Key has expired")
        return record


def _counted_token(subject: Subject) -> str | None:
    """The token whose uses a create takes, when its sessions are counted."""
    grant = subject.grant
    return grant.token_id if grant.bindings.max_sessions is not None else None


def _expiry(max_duration_s: int | None = None) -> str:
    """When Gladia ends the session at the latest, or the token's bound duration ends it here."""
    duration_s = GLADIA_MAX_SESSION_S
    if max_duration_s is not None:
        duration_s = min(duration_s, max_duration_s)
    expires_at = datetime.now(UTC) + timedelta(seconds=duration_s)
    return expires_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
