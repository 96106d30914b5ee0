"""The commands of the README, run as a person runs them."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.identity.credentials import Subject, TokenService
from broker.settings import load_settings
from tests.support.dev_broker import BROKER, CLEAN_ENV, running_dev_broker
from tests.support.servers import free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BROKER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**CLEAN_ENV, **(env or {})},
    )


def test_token_mint_prints_a_token_the_broker_accepts() -> None:
    keys = {"BROKER_SECRET_KEYS": "m" * 40}
    minted = run("token", "mint", "--sub", "alice", "--ttl", "120", env=keys)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert "\n" not in token
    settings = load_settings(environ=keys, env_file=None)
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    assert tokens.verify(token) == Subject("alice")


def test_token_mint_binds_what_its_options_ask_and_answers_as_the_api_does(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"presets": {"meeting": {"config": {}}, "support": {}}}))
    keys = {"BROKER_SECRET_KEYS": "m" * 40, "BROKER_POLICY_FILE": str(policy)}
    options = ["--preset", "meeting", "--preset", "support", "--max-channels", "2",
               "--max-duration", "60", "--single-use", "--client-ref", "order 7"]  # fmt: skip
    minted = run("token", "mint", "--sub", "alice", *options, "--json", env=keys)
    assert minted.returncode == 0, minted.stderr
    answer = json.loads(minted.stdout)
    assert set(answer) == {"token", "token_id", "expires_at", "bindings"}
    bindings = {"presets": ["meeting", "support"], "max_channels": 2, "max_duration_s": 60,
                "max_sessions": 1, "client_ref": "order 7"}  # fmt: skip
    assert answer["bindings"] == bindings
    settings = load_settings(environ=keys, env_file=None)
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    grant = tokens.verify(answer["token"]).grant
    assert grant.token_id == answer["token_id"]
    assert grant.bindings.as_response() == bindings


def test_token_mint_names_each_option_it_refuses() -> None:
    keys = {"BROKER_SECRET_KEYS": "m" * 40}
    options = ["--preset", "meeting", "--single-use", "--max-sessions", "3", "--max-channels", "0"]
    refused = run("token", "mint", "--sub", "alice", *options, env=keys)
    assert refused.returncode == 2
    assert refused.stdout == ""
    for option in ("--preset", "--single-use", "--max-channels"):
        assert f"broker: {option} " in refused.stderr, option


def test_serve_refuses_to_start_unconfigured_and_names_each_setting() -> None:
    refused = run("serve", "--port", str(free_port()))
    assert refused.returncode == 2
    for name in ("GLADIA_API_KEY", "REDIS_URL", "BROKER_SECRET_KEYS", "BROKER_PUBLIC_URL"):
        assert name in refused.stderr


def test_serve_refuses_a_wildcard_cors_origin() -> None:
    env = {
        "GLADIA_API_KEY": "k",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "BROKER_SECRET_KEYS": "s" * 40,
        "BROKER_PUBLIC_URL": "https://broker.example",
        "BROKER_CORS_ORIGINS": "*",
    }
    refused = run("serve", "--port", str(free_port()), env=env)
    assert refused.returncode == 2
    assert "BROKER_CORS_ORIGINS" in refused.stderr
    assert "s" * 40 not in refused.stderr


@pytest.fixture
def dev_broker() -> Iterator[tuple[str, str]]:
    """The development broker's URL and the token its banner exports."""
    with running_dev_broker() as broker:
        token = next(line for line in broker.exports if line.startswith("export TOKEN="))
        yield broker.base_url, token.removeprefix("export TOKEN=")


def test_dev_runs_the_whole_flow_with_nothing_configured(dev_broker: tuple[str, str]) -> None:
    base, token = dev_broker
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/v1/sessions", headers=headers, json={})
    assert created.status_code == 201, created.text
    session = created.json()
    found = httpx.get(f"{base}/v1/sessions/{session['id']}", headers=headers)
    assert found.json()["url"] == session["url"]
    result = httpx.get(f"{base}/v1/sessions/{session['id']}/result", headers=headers)
    assert result.json()["status"] == "queued"
    assert httpx.get(f"{base}/readyz").status_code == 200
    # The embedded simulator calls back to the embedded broker: its start_session is an event.
    deadline = time.monotonic() + 10
    events: list[str] = []
    while "live.start_session" not in events and time.monotonic() < deadline:
        listed = httpx.get(f"{base}/v1/sessions/{session['id']}/events", headers=headers)
        events = [item["event"] for item in listed.json()["items"]]
        time.sleep(0.05)
    assert events == ["live.start_session"]


def test_dev_serves_the_demo_page_on_the_simulator_with_a_token_for_this_machine(
    dev_broker: tuple[str, str],
) -> None:
    base, _ = dev_broker
    assert httpx.get(f"{base}/demo/").status_code == 200
    config = httpx.get(f"{base}/demo/config.json").json()
    assert config["simulator"] is True
    minted = httpx.post(f"{base}/demo/dev-token")
    assert minted.status_code == 201
    headers = {"Authorization": f"Bearer {minted.json()['token']}"}
    created = httpx.post(f"{base}/v2/live", headers=headers, json={})
    assert created.status_code == 201, created.text


def test_dev_without_redis_url_or_the_dev_extra_says_how_to_get_it() -> None:
    # fakeredis hidden as if the dev extra were not installed (the image has no fakeredis).
    hidden = (
        "import sys; sys.modules['fakeredis'] = None; from broker.cli import main; "
        f"main(['dev', '--port', '{free_port()}'])"
    )
    refused = subprocess.run(
        [sys.executable, "-c", hidden], capture_output=True, text=True, timeout=60, env=CLEAN_ENV
    )
    assert refused.returncode == 2
    assert "pip install 'gladia-broker[dev]'" in refused.stderr
    assert "REDIS_URL" in refused.stderr


def test_serve_leaves_startup_objects_out_of_the_collectors_passes() -> None:
    code = (
        "import gc; from broker.cli import GC_ALLOCATIONS_PER_PASS, freeze_startup_objects; "
        "before = gc.get_freeze_count(); freeze_startup_objects(); "
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0] == GC_ALLOCATIONS_PER_PASS)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    before, frozen, threshold_set = found.stdout.split()
    assert before == "0" and int(frozen) > 10_000 and threshold_set == "True"
