"""Property: any create body gives 201, a 4xx naming a field, or 429; never a 5xx; and whatever
reaches Gladia satisfies the policy."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from broker.identity.credentials import Subject, TokenService
from broker.policy.init_body import MESSAGE_FLAGS, SessionPolicy
from broker.policy.rules import rules_from_settings
from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import Simulator
from tests.support.servers import serve_in_thread

POLICY = {
    "encodings": ["wav/pcm"],
    "bit_depths": [16],
    "sample_rates": [16000, 48000],
    "max_channels": 2,
    "languages": ["en", "fr", "de"],
    "max_languages": 3,
    "addons": {
        "translation": {"target_languages": ["en", "fr", "de"], "max_targets": 2},
        "named_entity_recognition": True,
        "summarization": {"types": ["general", "concise"]},
        "custom_vocabulary": {"max_entries": 5, "max_total_chars": 60},
    },
    "presets": {
        "meeting-fr": {
            "config": {
                "language_config": {"languages": ["fr"]},
                "post_processing": {"summarization": True},
            },
            "overrides": ["sample_rate", "messages_config", "post_processing.summarization"],
        }
    },
}
TOP_LEVEL = {
    "model",
    "encoding",
    "bit_depth",
    "sample_rate",
    "channels",
    "endpointing",
    "maximum_duration_without_endpointing",
    "language_config",
    "messages_config",
    "realtime_processing",
    "post_processing",
    "custom_metadata",
    "callback",
    "callback_config",
}

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
codes = st.sampled_from(["en", "fr", "de", "es", "wo", "xx"])


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-formed values (valid or near-valid), sometimes anything at all."""
    return st.one_of(valid, valid, valid, anything)


def optional_object(**members: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=members)


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "encoding": field(st.sampled_from(["wav/pcm", "wav/pcm", "wav/alaw", "mp3"])),
    "bit_depth": field(st.sampled_from([16, 16, 16.0, 8, 24])),
    "sample_rate": field(st.sampled_from([16000, 48000, 16000.0, 44100, 22050])),
    "channels": field(st.integers(0, 3)),
    "endpointing": field(st.floats(-1, 12)),
    "maximum_duration_without_endpointing": field(st.floats(0, 80)),
    "language_config": field(
        optional_object(languages=st.lists(codes, max_size=3), code_switching=st.booleans())
    ),
    "messages_config": field(
        st.dictionaries(st.sampled_from([*MESSAGE_FLAGS, "url"]), st.booleans(), max_size=3)
    ),
    "realtime_processing": field(
        optional_object(
            translation=st.booleans(),
            translation_config=optional_object(
                target_languages=st.lists(codes, max_size=3),
                model=st.sampled_from(["base", "enhanced"]),
                informal=st.booleans(),
            ),
            named_entity_recognition=st.booleans(),
            sentiment_analysis=st.booleans(),
            custom_vocabulary=st.booleans(),
            custom_vocabulary_config=optional_object(
                vocabulary=st.lists(
                    st.text(min_size=1, max_size=15)
                    | st.fixed_dictionaries(
                        {"value": st.text(max_size=15)}, optional={"intensity": st.floats(-1, 2)}
                    ),
                    max_size=7,
                )
            ),
        )
    ),
    "post_processing": field(
        optional_object(
            summarization=st.booleans(),
            summarization_config=optional_object(
                type=st.sampled_from(["general", "concise", "bullet_points"])
            ),
        )
    ),
    "region": field(st.sampled_from(["eu-west", "us-west", "moon"])),
    "model": field(st.sampled_from(["solaria-1", "solaria-2"])),
    "custom_metadata": field(
        st.dictionaries(
            st.sampled_from(["user", "broker_request_id", "client", "bad key"]),
            st.text(max_size=8) | st.integers(-5, 5) | st.none() | st.lists(st.none(), max_size=1),
            max_size=3,
        )
    ),
}
allowed_codes = st.lists(st.sampled_from(["en", "fr", "de"]), min_size=1, max_size=2, unique=True)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "sample_rate": st.sampled_from([16000, 48000]),
    "channels": st.integers(1, 2),
    "endpointing": st.floats(0.01, 10),
    "language_config": optional_object(languages=allowed_codes, code_switching=st.booleans()),
    "messages_config": st.dictionaries(
        st.sampled_from([f for f in MESSAGE_FLAGS if f != "receive_acknowledgments"]),
        st.booleans(),
        max_size=3,
    ),
    "realtime_processing": optional_object(
        named_entity_recognition=st.booleans(), sentiment_analysis=st.just(False)
    )
    | st.fixed_dictionaries(
        {
            "translation": st.just(True),
            "translation_config": st.fixed_dictionaries({"target_languages": allowed_codes}),
        }
    ),
    "post_processing": optional_object(
        summarization=st.booleans(),
        summarization_config=optional_object(type=st.sampled_from(["general", "concise"])),
    ),
    "model": st.just("solaria-1"),
    # The broker's own keys among them: kept beneath the broker's, never in their place.
    "custom_metadata": st.dictionaries(
        st.sampled_from(["user", "broker_request_id", "broker_subject", "n"]),
        st.text(max_size=8) | st.integers(-5, 5),
        max_size=3,
    ),
}
FORBIDDEN: dict[str, st.SearchStrategy[Any]] = {
    "callback": anything,
    "callback_config": anything,
    "pre_processing": anything,
}


@st.composite
def create_bodies(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["valid", "few", "few", "preset", "forbidden", "anything"]))
    if shape == "anything":
        return draw(anything)
    if shape == "valid":
        names = draw(st.lists(st.sampled_from(sorted(VALID)), max_size=4, unique=True))
        return {name: draw(VALID[name]) for name in names}
    names = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True))
    body = {name: draw(VALUES[name]) for name in names}
    if shape == "preset":
        body["preset"] = draw(st.sampled_from(["meeting-fr", "meeting-fr", "nope"]) | anything)
    if shape == "forbidden":
        name = draw(st.sampled_from(sorted(FORBIDDEN)))
        body[name] = draw(FORBIDDEN[name])
    return body


def assert_within_policy(sent: dict[str, Any], subject_key: str, settings_: Settings) -> None:
    """Checked without the broker's policy code first, then against it."""
    assert set(sent) <= TOP_LEVEL
    metadata = sent["custom_metadata"]
    assert set(metadata) - {"client"} == {"broker_request_id", "broker_subject"}
    assert re.fullmatch(r"[0-9a-f]{32}", metadata["broker_request_id"])
    assert metadata["broker_subject"] == subject_key
    client_metadata = metadata.get("client", {})
    assert isinstance(client_metadata, dict) and len(client_metadata) <= 10
    assert all(not isinstance(value, dict | list) for value in client_metadata.values())
    assert sent.get("model", "solaria-1") == "solaria-1"
    if "callback_config" in sent:
        assert sent["callback_config"]["url"].startswith(f"{settings_.public_url}/v1/callbacks/")
    assert sent["messages_config"]["receive_acknowledgments"] is True
    assert sent.get("encoding", "wav/pcm") == "wav/pcm"
    assert sent.get("bit_depth", 16) == 16
    assert sent.get("sample_rate", 16000) in (16000, 48000)
    assert sent.get("channels", 1) in (1, 2)
    languages = sent["language_config"]["languages"]
    assert languages and set(languages) <= {"en", "fr", "de"}
    realtime = sent.get("realtime_processing", {})
    assert realtime.get("sentiment_analysis") is not True
    if realtime.get("translation"):
        targets = realtime["translation_config"]["target_languages"]
        assert 1 <= len(targets) <= 2 and set(targets) <= {"en", "fr", "de"}
    if realtime.get("custom_vocabulary"):
        assert len(realtime["custom_vocabulary_config"]["vocabulary"]) <= 5
    post = sent.get("post_processing", {})
    if post.get("summarization"):
        assert post.get("summarization_config", {}).get("type", "general") in ("general", "concise")
    policy = SessionPolicy.from_settings(settings_)
    owned = ("custom_metadata", "callback", "callback_config")
    config = {key: value for key, value in sent.items() if key not in owned}
    policy.check_config({**config, "custom_metadata": client_metadata})


def test_any_create_body_is_answered_deliberately_and_gladia_only_sees_allowed_configs(
    settings: Settings, simulator: Simulator, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    broker_settings = replace(
        settings, policy_file=str(policy_file), max_live_per_subject=1000, account_max_live=1000
    )
    rules_from_settings(broker_settings)  # the policy document itself is valid
    tokens = TokenService(
        broker_settings.secret_keys, broker_settings.token_ttl_s, broker_settings.token_max_ttl_s
    )
    statuses: Counter[int] = Counter()

    with serve_in_thread(create_app(broker_settings), proxy_headers=False) as base_url:
        client = httpx.Client(base_url=base_url, timeout=10)

        @hypothesis_settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(body=create_bodies())
        def answered_deliberately(body: Any) -> None:
            simulator.state.reset()
            subject = Subject(uuid.uuid4().hex)
            headers = {
                "Authorization": f"Bearer {tokens.mint(subject.id).token}",
                "content-type": "application/json",
            }
            response = client.post("/v1/sessions", headers=headers, content=json.dumps(body))
            statuses[response.status_code] += 1
            assert response.status_code in (201, 422, 429), response.text
            calls = simulator.calls()
            if response.status_code != 201:
                assert response.headers["content-type"] == "application/problem+json"
                assert calls == [], "a refused create never reaches Gladia"
            if response.status_code == 422:
                errors = response.json()["errors"]
                assert errors and all(isinstance(e["field"], str) and e["field"] for e in errors)
            if response.status_code == 201:
                [call] = calls
                assert_within_policy(call.json, subject.key, broker_settings)

        try:
            answered_deliberately()
        finally:
            client.close()

    # Not vacuous: both outcomes were explored.
    assert statuses[201] >= 10 and statuses[422] >= 10, statuses
