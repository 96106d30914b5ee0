"""Every Redis key keeps its exact name: live records and Cluster slots depend on the bytes."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from broker.store import keys

OWNER = "owner-a"


def test_a_sessions_keys_are_named_as_stored() -> None:
    assert keys.session_record_key(OWNER, "s1") == "broker:{owner-a}:session:s1"
    assert keys.session_result_key(OWNER, "s1") == "broker:{owner-a}:result:s1"
    assert keys.sessions_index_key(OWNER) == "broker:{owner-a}:sessions"
    assert keys.session_keys(OWNER, "s1") == keys.SessionKeys(
        record="broker:{owner-a}:session:s1",
        result="broker:{owner-a}:result:s1",
        index="broker:{owner-a}:sessions",
    )


def test_callback_and_event_keys_are_named_as_stored() -> None:
    assert keys.callback_binding_key(OWNER, "r1") == "broker:{owner-a}:callback:r1"
    assert keys.early_callbacks_key(OWNER, "r1") == "broker:{owner-a}:callback-early:r1"
    assert keys.event_stream_key(OWNER, "s1") == "broker:{owner-a}:events:s1"
    assert keys.events_seen_key(OWNER, "s1") == "broker:{owner-a}:events-seen:s1"
    assert keys.relay_cursor_key(OWNER, "s1") == "broker:{owner-a}:relay-cursor:s1"
    assert keys.session_owner_key("s1") == "broker:session-owner:s1"


def test_webhook_keys_are_named_as_stored() -> None:
    assert keys.webhook_message_key("m1") == "broker:webhook-message:m1"
    assert keys.webhook_deferral_key("m1") == "broker:webhook-deferred:m1"


def test_job_queue_keys_are_named_as_stored() -> None:
    assert keys.job_due_key("webhooks") == "broker:{jobs}:webhooks:due"
    assert keys.job_generation_key("webhooks") == "broker:{jobs}:webhooks:generation"
    assert keys.job_tries_key("webhooks") == "broker:{jobs}:webhooks:tries"
    assert keys.job_lock_key("webhooks", "member-1") == "broker:{jobs}:webhooks:lock:member-1"


def test_limit_keys_are_named_as_stored() -> None:
    assert keys.ACCOUNT_LEASES_KEY == "broker:{account}:leases"
    assert keys.subject_leases_key("alice") == "broker:{alice}:leases"
    assert keys.subject_creates_key("alice") == "broker:{alice}:creates"


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "fec52565aa0cf18f57d7cf5b"),
        ("::ffff:203.0.113.7", "fec52565aa0cf18f57d7cf5b"),
        ("2001:db8:1:2::1", "7437dddbc0275bcfe536fa29"),
        ("2001:db8:1:2:ffff::9", "7437dddbc0275bcfe536fa29"),
        ("not-an-ip", "f5f62736e24bd225db003180"),
    ],
)
def test_address_miss_keys_are_named_as_stored(address: str, bucket: str) -> None:
    assert keys.address_bucket(address) == bucket
    assert keys.address_misses_key(address) == f"broker:{{addr:{bucket}}}:misses"
    assert keys.bucket_misses_key(bucket) == f"broker:{{addr:{bucket}}}:misses"


def test_idempotency_claim_keys_are_named_as_stored() -> None:
    assert (
        keys.idempotency_claim_key("alice", "key-1")
        == "broker:{alice}:idem:be2974546978e3739e6d6da85c4be9f3"
    )
    assert (
        keys.idempotency_claim_key("alice", "x" * 255)
        == "broker:{alice}:idem:d22609da3ae3956ca4877056a8e580ee"
    )


def test_token_and_usage_keys_are_named_as_stored() -> None:
    assert keys.subject_revocations_key("alice") == "broker:{alice}:revoked"
    assert keys.token_uses_key("alice", "t1") == "broker:{alice}:token-uses:t1"
    assert keys.subject_usage_key("alice", "2026-12-07") == "broker:{alice}:usage:2026-12-07"
    assert (
        keys.usage_counted_key("alice", "2026-12-07") == "broker:{alice}:usage-counted:2026-12-07"
    )


def test_every_key_of_one_owner_is_on_the_owners_slot() -> None:
    owner_keys = [
        keys.session_record_key(OWNER, "s1"),
        keys.session_result_key(OWNER, "s1"),
        keys.sessions_index_key(OWNER),
        keys.callback_binding_key(OWNER, "r1"),
        keys.early_callbacks_key(OWNER, "r1"),
        keys.event_stream_key(OWNER, "s1"),
        keys.events_seen_key(OWNER, "s1"),
        keys.relay_cursor_key(OWNER, "s1"),
        keys.subject_leases_key(OWNER),
        keys.subject_creates_key(OWNER),
        keys.idempotency_claim_key(OWNER, "key-1"),
        keys.subject_revocations_key(OWNER),
        keys.token_uses_key(OWNER, "t1"),
        keys.subject_usage_key(OWNER, "2026-12-07"),
        keys.usage_counted_key(OWNER, "2026-12-07"),
    ]
    assert {key_slot(key.encode()) for key in owner_keys} == {key_slot(b"owner-a")}


def test_every_part_of_a_job_queue_is_on_one_slot() -> None:
    queue_keys = [
        keys.job_due_key("relay"),
        keys.job_generation_key("relay"),
        keys.job_tries_key("relay"),
        keys.job_lock_key("relay", "m"),
        keys.job_due_key("result-fetch"),
    ]
    assert {key_slot(key.encode()) for key in queue_keys} == {key_slot(b"jobs")}


def test_read_budget_and_dead_letter_keys_are_named_as_stored_on_their_slots() -> None:
    assert keys.subject_reads_key(OWNER) == "broker:{owner-a}:reads"
    assert keys.relay_failure_key(OWNER, "s1") == "broker:{owner-a}:relay-failure:s1"
    assert keys.job_dead_letters_key("relay") == "broker:{jobs}:relay:dead-letters"
    owner_slot = {key_slot(b"owner-a")}
    assert {key_slot(keys.subject_reads_key(OWNER).encode())} == owner_slot
    assert {key_slot(keys.relay_failure_key(OWNER, "s1").encode())} == owner_slot
    assert key_slot(keys.job_dead_letters_key("relay").encode()) == key_slot(b"jobs")
