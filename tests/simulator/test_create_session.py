"""POST /v2/live: the key, the body checks, the region, the answer, and the concurrency limit."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.simulator.conftest import API_KEY, InProcess

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_a_create_answers_201_with_id_created_at_and_a_socket_url(sim: InProcess) -> None:
    response = await sim.client.post("/v2/live", json={})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "created_at", "url"}
    assert ISO.match(body["created_at"])
    url = urlsplit(body["url"])
    assert (url.scheme, url.netloc, url.path) == ("ws", "simulator.test", "/v2/live")
    token = parse_qs(url.query)["token"][0]
    assert token and token != body["id"]


async def test_the_socket_url_follows_the_host_and_scheme_the_client_used(sim: InProcess) -> None:
    response = await sim.client.post("https://gladia.example:8443/v2/live", json={})

    assert response.json()["url"].startswith("wss://gladia.example:8443/v2/live?token=")


async def test_a_missing_key_is_refused_with_gladias_envelope(sim: InProcess) -> None:
    response = await sim.client.post("/v2/live", json={}, headers={"x-gladia-key": ""})

    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401
    assert body["path"] == "/v2/live"
    assert body["message"] == "no gladia key provided"
    assert re.match(r"^G-[0-9a-f]{8}$", body["request_id"])
    assert ISO.match(body["timestamp"])


async def test_a_wrong_key_is_refused(sim: InProcess) -> None:
    response = await sim.client.post("/v2/live", json={}, headers={"x-gladia-key": "other"})

    assert response.status_code == 401
    assert response.json()["message"] == "gladia key not found"


async def test_the_key_header_name_is_case_insensitive(sim: InProcess) -> None:
    async with httpx.AsyncClient(
        transport=sim.client._transport, base_url="http://s.test"
    ) as plain:
        response = await plain.post("/v2/live", json={}, headers={"X-Gladia-Key": API_KEY})

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"encoding": "mp3"},
            "encoding must be one of the following values: wav/pcm, wav/alaw, wav/ulaw",
        ),
        ({"bit_depth": 12}, "bit_depth must be one of the following values: 8, 16, 24, 32"),
        ({"sample_rate": 22050}, "sample_rate must be one of the following values"),
        ({"channels": 9}, "channels must not be greater than 8"),
        ({"channels": 0}, "channels must not be less than 1"),
        ({"channels": 1.5}, "channels must be an integer number"),
        ({"model": "solaria-9"}, "model must be one of the following values: solaria-1"),
        ({"endpointing": 0.001}, "endpointing must not be less than 0.01"),
        ({"endpointing": "fast"}, "endpointing must be a number"),
        (
            {"maximum_duration_without_endpointing": 61},
            "maximum_duration_without_endpointing must not be greater than 60",
        ),
        (
            {"language_config": {"languages": ["en", "xx"]}},
            "language_config.languages.1 must be one of",
        ),
        (
            {"language_config": {"code_switching": "yes"}},
            "language_config.code_switching must be a boolean value",
        ),
        ({"language_config": []}, "language_config must be an object"),
        (
            {"pre_processing": {"speech_threshold": 2}},
            "pre_processing.speech_threshold must not be greater than 1",
        ),
        (
            {"realtime_processing": {"translation": 1}},
            "realtime_processing.translation must be a boolean value",
        ),
        (
            {"realtime_processing": {"translation_config": {"target_languages": []}}},
            "realtime_processing.translation_config.target_languages must contain at least 1",
        ),
        (
            {
                "realtime_processing": {
                    "translation_config": {"target_languages": ["wo"], "model": "x"}
                }
            },
            "realtime_processing.translation_config.model must be one of",
        ),
        (
            {
                "realtime_processing": {
                    "custom_vocabulary_config": {"vocabulary": [{"intensity": 0.5}]}
                }
            },
            "realtime_processing.custom_vocabulary_config.vocabulary.0.value must be a string",
        ),
        (
            {
                "realtime_processing": {
                    "custom_spelling_config": {"spelling_dictionary": {"SQL": "sequel"}}
                }
            },
            "realtime_processing.custom_spelling_config.spelling_dictionary must be an object",
        ),
        (
            {"post_processing": {"summarization_config": {"type": "long"}}},
            "post_processing.summarization_config.type must be one of",
        ),
        (
            {"messages_config": {"receive_partial_transcripts": "true"}},
            "messages_config.receive_partial_transcripts must be a boolean value",
        ),
        ({"callback": "yes"}, "callback must be a boolean value"),
        ({"callback": True}, "callback_config.url must be a URL address when callback is true"),
        ({"callback_config": {"url": "not a url"}}, "callback_config.url must be a URL address"),
        (
            {"callback_config": {"receive_errors": 0}},
            "callback_config.receive_errors must be a boolean value",
        ),
        ({"custom_metadata": "user"}, "custom_metadata must be an object"),
        (
            {"custom_metadata": {"note": "x" * 2000}},
            "custom_metadata must be shorter than or equal to 2000",
        ),
        (
            {"encoding": "wav/alaw", "bit_depth": 16},
            "bit_depth must be 8 when encoding is wav/alaw or wav/ulaw",
        ),
    ],
)
async def test_each_invalid_field_is_named_in_a_400(
    sim: InProcess, body: dict[str, object], error: str
) -> None:
    response = await sim.client.post("/v2/live", json=body)

    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["statusCode"] == 400
    assert payload["message"] == "Bad Request"
    assert any(message.startswith(error) for message in payload["validation_errors"]), payload


async def test_every_bad_field_of_one_body_is_reported(sim: InProcess) -> None:
    response = await sim.client.post(
        "/v2/live", json={"encoding": "mp3", "channels": 20, "callback": 3}
    )

    errors = response.json()["validation_errors"]
    assert [e.split(" ")[0] for e in errors] == ["encoding", "channels", "callback"]


async def test_a_body_that_is_not_a_json_object_is_a_400(sim: InProcess) -> None:
    not_json = await sim.client.post(
        "/v2/live", content=b"{nope", headers={"content-type": "application/json"}
    )
    a_list = await sim.client.post("/v2/live", json=[1, 2])

    assert not_json.status_code == a_list.status_code == 400


async def test_metadata_of_exactly_2000_characters_is_accepted(sim: InProcess) -> None:
    metadata = {"n": "x" * (2000 - len('{"n":""}'))}

    response = await sim.client.post("/v2/live", json={"custom_metadata": metadata})

    assert response.status_code == 201


async def test_unknown_fields_are_ignored_and_not_echoed(sim: InProcess) -> None:
    created = await sim.create(
        {"words_accurate_timestamps": False, "realtime_processing": {"foo": 1}}
    )

    params = sim.state.sessions[created["id"]].request_params
    assert "words_accurate_timestamps" not in params
    assert "foo" not in params["realtime_processing"]


async def test_null_fields_take_their_defaults(sim: InProcess) -> None:
    created = await sim.create({"encoding": None, "language_config": None})

    params = sim.state.sessions[created["id"]].request_params
    assert params["encoding"] == "wav/pcm"
    assert params["language_config"] == {"languages": [], "code_switching": False}


@pytest.mark.parametrize("region", ["us-west", "eu-west"])
async def test_known_regions_are_accepted(sim: InProcess, region: str) -> None:
    response = await sim.client.post("/v2/live", params={"region": region}, json={})

    assert response.status_code == 201
    assert sim.state.sessions[response.json()["id"]].region == region


async def test_an_unknown_region_is_a_400(sim: InProcess) -> None:
    response = await sim.client.post("/v2/live", params={"region": "ap-south"}, json={})

    assert response.status_code == 400
    assert response.json()["validation_errors"] == [
        "region must be one of the following values: us-west, eu-west"
    ]


@pytest.mark.simulator_config(max_live_sessions=2)
async def test_sessions_beyond_the_concurrency_limit_get_429(sim: InProcess) -> None:
    first = await sim.create()
    await sim.create()

    refused = await sim.client.post("/v2/live", json={})

    assert refused.status_code == 429
    assert refused.json()["statusCode"] == 429
    sim.state.store.settle(sim.state.sessions[first["id"]], "done")
    assert (await sim.client.post("/v2/live", json={})).status_code == 201
