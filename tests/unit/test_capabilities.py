"""Capability URLs: minted per create, verified with their own salt and lifetime."""

import json
import time

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from starlette.datastructures import Secret

from broker.bounded_json import MAX_JSON_DEPTH
from broker.errors import BadRequest, NotFound
from broker.events.callbacks import (
    CAPABILITY_SALT,
    CallbackBinding,
    CallbackCapabilities,
    parse_callback,
    parse_webhook,
)
from broker.identity.credentials import TokenService
from tests.support.tampering import tampered

KEYS = (Secret("new-signing-key-" + "n" * 24), Secret("old-signing-key-" + "o" * 24))
BINDING = CallbackBinding(owner="a" * 32, request_id="b" * 32)
TTL_S = 28 * 3600


def capabilities(
    keys: tuple[Secret, ...] = KEYS, categories: tuple[str, ...] = ("lifecycle_events",)
) -> CallbackCapabilities:
    return CallbackCapabilities(keys, TTL_S, "https://broker.example", categories)


def test_a_capability_verifies_to_the_binding_it_was_minted_for() -> None:
    assert capabilities().verify(capabilities().mint(BINDING)) == BINDING


def test_a_capability_minted_compressed_by_an_earlier_version_still_verifies() -> None:
    keys = [str(key) for key in reversed(KEYS)]
    earlier = URLSafeTimedSerializer(keys, salt=CAPABILITY_SALT)
    minted = earlier.dumps([BINDING.owner, BINDING.request_id])
    assert minted.startswith(".")  # zlib's payload, as itsdangerous writes it
    assert not capabilities().mint(BINDING).startswith(".")
    assert capabilities().verify(minted) == BINDING


def test_a_capability_is_minted_as_itsdangerous_mints_it_uncompressed() -> None:
    keys = [str(key) for key in reversed(KEYS)]
    reference = URLSafeTimedSerializer(keys, salt=CAPABILITY_SALT)
    with time_machine.travel(1_760_000_000.5, tick=False):
        minted = capabilities().mint(BINDING)
        value = json.dumps([BINDING.owner, BINDING.request_id], separators=(",", ":"))
        payload = reference.make_signer().sign(base64_encode(value.encode())).decode()
    assert minted == payload
    assert reference.loads(minted) == [BINDING.owner, BINDING.request_id]


def test_a_capability_minted_with_an_older_key_still_verifies() -> None:
    old = capabilities(keys=(KEYS[1],)).mint(BINDING)
    assert capabilities().verify(old) == BINDING


@pytest.mark.parametrize("position", [1, 10, -1])
def test_a_tampered_capability_is_not_found(position: int) -> None:
    token = capabilities().mint(BINDING)
    with pytest.raises(NotFound):
        capabilities().verify(tampered(token, position))


def test_a_capability_outlives_a_session_and_its_retries_then_expires() -> None:
    with time_machine.travel(time.time(), tick=False) as clock:
        token = capabilities().mint(BINDING)
        clock.shift(TTL_S - 60)
        assert capabilities().verify(token) == BINDING
        clock.shift(120)
        with pytest.raises(NotFound):
            capabilities().verify(token)


def test_a_user_token_signed_with_the_same_keys_is_not_a_capability() -> None:
    user_token = TokenService(KEYS, 3600, 3600).mint("alice").token
    with pytest.raises(NotFound):
        capabilities().verify(user_token)


def test_a_capability_is_not_a_user_token() -> None:
    from broker.errors import Unauthorized

    with pytest.raises(Unauthorized):
        TokenService(KEYS, 3600, 3600).verify(capabilities().mint(BINDING))


def test_a_capability_verified_and_cached_under_one_key_set_is_not_found_under_the_next() -> None:
    minted = capabilities(keys=(KEYS[1],)).mint(BINDING)
    rotating = capabilities()
    for _ in range(2):  # verified, then answered from the cache
        assert rotating.verify(minted) == BINDING
    with pytest.raises(NotFound):
        capabilities(keys=(KEYS[0],)).verify(minted)


def test_a_capability_from_other_keys_is_not_found() -> None:
    foreign = capabilities(keys=(Secret("someone-elses-key-" + "x" * 24),)).mint(BINDING)
    with pytest.raises(NotFound):
        capabilities().verify(foreign)


def test_the_callback_config_spells_out_every_category() -> None:
    fields = capabilities(categories=("final_transcripts", "lifecycle_events")).callback_config(
        BINDING.owner, BINDING.request_id
    )
    config = fields["callback_config"]
    url = config.pop("url")
    assert fields["callback"] is True
    assert url.startswith("https://broker.example/v1/callbacks/")
    assert capabilities().verify(url.rsplit("/", 1)[1]) == BINDING
    assert config == {
        "receive_partial_transcripts": False,
        "receive_final_transcripts": True,
        "receive_speech_events": False,
        "receive_pre_processing_events": False,
        "receive_realtime_processing_events": False,
        "receive_post_processing_events": False,
        "receive_acknowledgments": False,
        "receive_errors": False,
        "receive_lifecycle_events": True,
    }


def test_without_a_public_url_no_callback_is_requested() -> None:
    assert CallbackCapabilities(KEYS, TTL_S, None, ()).callback_config("a", "b") == {}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "s1", "event": "live.unknown", "payload": {}}',
        b'{"id": "s1", "event": "live.transcript", "payload": []}',
        b'{"id": "../s1", "event": "live.transcript", "payload": {}}',
        b'{"event": "live.transcript", "payload": {}}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_a_callback_body_of_the_wrong_shape_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_callback(body)


def test_webhooks_about_other_things_than_live_sessions_are_ignored() -> None:
    assert parse_webhook(b'{"event": "transcription.success", "payload": {"id": "j"}}') is None
    delivery = parse_webhook(b'{"event": "live.end_session", "payload": {"id": "s-1"}}')
    assert delivery is not None and delivery.session_id == "s-1"


def nested(levels: int) -> str:
    """JSON text of an object `levels` deep: {"n": {"n": … {} …}} (too deep for json.dumps)."""
    return '{"n":' * (levels - 1) + "{}" + "}" * (levels - 1)


def callback_nested(body_levels: int) -> bytes:
    """A live.transcript callback whose body nests `body_levels` deep in all."""
    payload = f'{{"type": "transcript", "data": {nested(body_levels - 2)}}}'
    return f'{{"id": "s1", "event": "live.transcript", "payload": {payload}}}'.encode()


def test_a_callback_as_deep_as_the_bound_is_accepted() -> None:
    assert parse_callback(callback_nested(MAX_JSON_DEPTH)).payload["type"] == "transcript"


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_a_callback_nested_deeper_than_the_bound_is_refused_saying_so(levels: int) -> None:
    with pytest.raises(BadRequest, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_callback(callback_nested(levels))


def test_a_webhook_nested_deeper_than_the_bound_is_refused_saying_so() -> None:
    payload = f'{{"id": "s-1", "extra": {nested(MAX_JSON_DEPTH)}}}'
    body = f'{{"event": "live.end_session", "payload": {payload}}}'
    with pytest.raises(BadRequest, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_webhook(body.encode())


def test_gladias_deepest_callback_is_well_within_the_bound() -> None:
    # A post_final_transcript with translations (the contract reference, 3.3 and 3.4.5): body,
    # payload, data, translation, results, result, utterances, utterance, words, word: 10 deep.
    word = {"word": "Hola", "start": 0.0, "end": 0.3, "confidence": 0.9}
    utterance = {"text": "Hola", "language": "es", "words": [word]}
    translated = {"full_transcript": "Hola", "languages": ["es"], "utterances": [utterance]}
    data = {
        "metadata": {"audio_duration": 1.0},
        "transcription": {"full_transcript": "Hello", "utterances": [utterance]},
        "translation": {"success": True, "error": None, "results": [translated]},
    }
    payload = {"session_id": "s1", "type": "post_final_transcript", "data": data}
    body = {"id": "s1", "event": "live.post_final_transcript", "payload": payload}
    assert parse_callback(json.dumps(body).encode()).payload == payload
    assert MAX_JSON_DEPTH >= 10 * 4
