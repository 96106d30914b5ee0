"""The only code naming Redis keys: every key the broker reads or writes is built here.

The names are stored data: renaming one orphans live records, and moving a hash tag moves keys
to another Cluster slot. `tests/unit/test_keys.py` pins every name.

Hash tags. Redis Cluster places a key by the part between its first `{` and the next `}` (when
not empty), and a script, a MULTI or a multi-key command may only touch keys of one slot
(CROSSSLOT otherwise). So the keys one script touches together share a tag:

- `{<owner>}`: everything of one subject (its `Subject.key`, already a hash): records, results,
  index, callbacks, events, relay state, leases, creates, reads, idempotency claims. One script
  can then save a record, confirm the subject's lease and take the callbacks that came early
  (`broker.sessions.create_writes`), or check a callback against its record, de-duplicate it,
  append it and move the record's status (`EventStore`).
- `{account}`: the account's lease set, shared by every subject, so never in a script with one
  subject's keys on a Cluster (admission runs two scripts there, subject first, and one on a
  single node, where slots do not apply; release is a plain pipeline).
- `{addr:<bucket>}`: one client address's misses, one key per script; `addr:` keeps it apart
  from an owner's tag.
- `{jobs}`: every part of every job queue, so `mark`, `finish`, `retry_later`, and a dead
  letter's parking and replay change a queue's due set, generations, tries and dead letters in
  one script.
Keys without a tag (`session-owner`, `webhook-*`) are read and written one at a time.

Every key, its type, and the code that sets its TTL (nothing is stored without one); `{o}` is
the owner's tag, the subject's `Subject.key`:

- `broker:{o}:session:<session id>`: string, the record (`broker.store.session_record`).
  `SessionStore`: `BROKER_SESSION_TTL_S`, then `BROKER_RESULT_TTL_S` once the session is final.
- `broker:{o}:result:<session id>`: string, the final result's JSON. `SessionStore`:
  `BROKER_RESULT_TTL_S`.
- `broker:{o}:sessions`: sorted set, session id to creation time (s), capped at
  `BROKER_SESSIONS_INDEX_MAX`. `SessionStore`: the longer of the two TTLs above.
- `broker:{o}:callback:<request id>`: hash, `session_id` and (for the relay) `subject`: the
  callback binding of sessions created before records kept both. Only read (the relay's
  `EventStore.legacy_subject`) and deleted now; it expires with `BROKER_CALLBACK_TTL_S`.
- `broker:{o}:callback-early:<request id>`: list of callbacks that came before the create's
  record, capped. `EventStore`: Gladia's total timeout and a margin.
- `broker:{o}:events:<session id>`: stream, trimmed to about `BROKER_EVENTS_MAX`. `EventStore`:
  the longer of the session and result TTLs.
- `broker:{o}:events-seen:<session id>`: set of event digests, capped. `EventStore`:
  `BROKER_DEDUPE_TTL_S`.
- `broker:{o}:relay-cursor:<session id>`: string, the last relayed stream id. `EventStore`: as
  the stream.
- `broker:{o}:relay-failure:<session id>`: hash, the failing relay delivery (`event`,
  `attempts`, `first_ms`, `error`). `EventStore`: as the stream.
- `broker:{o}:leases`: sorted set, lease id (request id while pending, then session id) to
  expiry (ms). `Limits`: the longest lease it can hold.
- `broker:{o}:creates`: sorted set, request id to admission time (ms). `Limits`: the creates
  window.
- `broker:{o}:reads`: sorted set, one member per unit of read budget spent, to its time (ms),
  at most `BROKER_READS_PER_MINUTE` of them. `Limits`: the reads window.
- `broker:{o}:idem:<hash of the Idempotency-Key>`: hash, the claim. `Idempotency`:
  `BROKER_IDEMPOTENCY_TTL_S`.
- `broker:{o}:revoked`: hash, `not-before` (Unix seconds: credentials issued before it are
  refused) and `token:<token id>` for each token revoked one by one. `Revocations`:
  `BROKER_TOKEN_MAX_TTL_S`, refreshed by every revocation.
- `broker:{o}:token-uses:<token id>`: set of the request ids of the creates a token bound to
  `max_sessions` was admitted for. `Limits`: `BROKER_TOKEN_MAX_TTL_S`, refreshed by each use.
- `broker:{o}:usage:<YYYY-MM-DD>`: hash, the day's (UTC) audio seconds (`seconds`), sessions
  counted (`sessions`) and seconds per `client_ref` (`ref:<client_ref>`). `Usage`: 35 days.
- `broker:{o}:usage-counted:<YYYY-MM-DD>`: set of the session ids counted that day, so a
  session's result is counted once. `Usage`: as the usage hash.

Elsewhere:

- `broker:{account}:leases`: sorted set, as a subject's leases. `Limits`: as those.
- `broker:{addr:<bucket>}:misses`: sorted set, attempt id to time (ms), capped at
  `BROKER_FAILED_ATTEMPTS_PER_MINUTE`. `Limits`: the misses window.
- `broker:{jobs}:<queue>:due`: sorted set, member to due time (ms). `EventStore`: the longer of
  the result and callback TTLs, refreshed by every `mark`.
- `broker:{jobs}:<queue>:generation` and `…:tries`: hashes, member to a count. `EventStore`: as
  `due`.
- `broker:{jobs}:<queue>:lock:<member>`: string, the holder's token. `EventStore`: the job's
  lease.
- `broker:{jobs}:<queue>:dead-letters`: stream of work given up on (member, session, event,
  attempts, error class, first failure), trimmed to the events' TTL at each addition.
  `EventStore`: as the events, refreshed by each addition. Its members wait, parked, in `due`.
- `broker:session-owner:<session id>`: string, the owner, for account webhooks (which name only
  the session). `EventStore`: `BROKER_CALLBACK_TTL_S`.
- `broker:webhook-message:<message id>`: string, a webhook already handled. `EventStore`:
  `BROKER_DEDUPE_TTL_S`.
- `broker:webhook-deferred:<message id>`: counter of a webhook's deferrals. `EventStore`: one
  hour.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass

ACCOUNT_LEASES_KEY = "broker:{account}:leases"


# --- sessions (broker.store.records) ------------------------------------------------------


def session_record_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:session:{session_id}"


def session_result_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:result:{session_id}"


def sessions_index_key(owner: str) -> str:
    return f"broker:{{{owner}}}:sessions"


@dataclass(frozen=True)
class SessionKeys:
    """The keys one session occupies: its record, its cached result, and its owner's index."""

    record: str
    result: str
    index: str


def session_keys(owner: str, session_id: str) -> SessionKeys:
    """Where a session lives in Redis, for audits and benchmarks (memory, TTLs)."""
    return SessionKeys(
        session_record_key(owner, session_id),
        session_result_key(owner, session_id),
        sessions_index_key(owner),
    )


# --- callbacks, events, webhooks (broker.store.events) ------------------------------------


def callback_binding_key(owner: str, request_id: str) -> str:
    return f"broker:{{{owner}}}:callback:{request_id}"


def early_callbacks_key(owner: str, request_id: str) -> str:
    return f"broker:{{{owner}}}:callback-early:{request_id}"


def event_stream_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:events:{session_id}"


def events_seen_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:events-seen:{session_id}"


def relay_cursor_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:relay-cursor:{session_id}"


def relay_failure_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:relay-failure:{session_id}"


def session_owner_key(session_id: str) -> str:
    return f"broker:session-owner:{session_id}"


def webhook_message_key(message_id: str) -> str:
    return f"broker:webhook-message:{message_id}"


def webhook_deferral_key(message_id: str) -> str:
    return f"broker:webhook-deferred:{message_id}"


# --- job queues (broker.store.events) -----------------------------------------------------


def job_due_key(queue: str) -> str:
    return f"broker:{{jobs}}:{queue}:due"


def job_generation_key(queue: str) -> str:
    return f"broker:{{jobs}}:{queue}:generation"


def job_tries_key(queue: str) -> str:
    return f"broker:{{jobs}}:{queue}:tries"


def job_lock_key(queue: str, member: str) -> str:
    return f"broker:{{jobs}}:{queue}:lock:{member}"


def job_dead_letters_key(queue: str) -> str:
    return f"broker:{{jobs}}:{queue}:dead-letters"


# --- limits (broker.policy.limits) --------------------------------------------------------


def subject_leases_key(subject_key: str) -> str:
    return f"broker:{{{subject_key}}}:leases"


def subject_creates_key(subject_key: str) -> str:
    return f"broker:{{{subject_key}}}:creates"


def subject_reads_key(subject_key: str) -> str:
    return f"broker:{{{subject_key}}}:reads"


@functools.lru_cache(maxsize=4096)
def address_bucket(address: str) -> str:
    """A hashed handle for a client address; IPv6 clients are grouped by their /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        bucket = address
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv6Address):
            bucket = str(ipaddress.IPv6Network((ip, 64), strict=False))
        else:
            bucket = str(ip)
    return hashlib.sha256(bucket.encode()).hexdigest()[:24]


def bucket_misses_key(bucket: str) -> str:
    """The misses of the addresses whose `address_bucket` is `bucket`."""
    return f"broker:{{addr:{bucket}}}:misses"


def address_misses_key(address: str) -> str:
    return bucket_misses_key(address_bucket(address))


# --- tokens and usage (broker.identity.revocation, broker.policy.limits, broker.policy.usage)


def subject_revocations_key(subject_key: str) -> str:
    return f"broker:{{{subject_key}}}:revoked"


def token_uses_key(subject_key: str, token_id: str) -> str:
    return f"broker:{{{subject_key}}}:token-uses:{token_id}"


def subject_usage_key(subject_key: str, day: str) -> str:
    """The subject's usage on `day` (UTC, YYYY-MM-DD)."""
    return f"broker:{{{subject_key}}}:usage:{day}"


def usage_counted_key(subject_key: str, day: str) -> str:
    return f"broker:{{{subject_key}}}:usage-counted:{day}"


# --- idempotency (broker.policy.idempotency) ----------------------------------------------


def idempotency_claim_key(subject_key: str, idempotency_key: str) -> str:
    """The claim on a client's `Idempotency-Key`, which is hashed: it is the client's text."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"broker:{{{subject_key}}}:idem:{digest}"
