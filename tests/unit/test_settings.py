from pathlib import Path

import pytest

from broker.errors import SettingsError
from broker.settings import DEVELOPMENT_SECRET, check_for_production, load_settings

PRODUCTION = {
    "GLADIA_API_KEY": "a-real-key",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "BROKER_SECRET_KEYS": "k" * 40 + ",old" + "o" * 40,
    "BROKER_PUBLIC_URL": "https://broker.example.com/",
    "BROKER_CORS_ORIGINS": "https://app.example.com, https://admin.example.com",
}


def test_nothing_configured_gives_the_development_defaults() -> None:
    settings = load_settings(environ={}, env_file=None)
    assert settings.gladia_api_url == "https://api.gladia.io"
    assert settings.redis_url is None
    assert [str(key) for key in settings.secret_keys] == [DEVELOPMENT_SECRET]


def test_lists_and_urls_are_parsed() -> None:
    settings = load_settings(environ=PRODUCTION, env_file=None)
    assert [str(key) for key in settings.secret_keys] == ["k" * 40, "old" + "o" * 40]
    assert settings.cors_origins == ("https://app.example.com", "https://admin.example.com")
    assert settings.public_url == "https://broker.example.com"
    assert check_for_production(settings) == []


def test_the_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GLADIA_REGION=us-west\nBROKER_TOKEN_TTL_S=600\n")
    settings = load_settings(environ={}, env_file=env_file)
    assert settings.gladia_region == "us-west"
    assert settings.token_ttl_s == 600


def test_serve_names_every_missing_or_unsafe_setting() -> None:
    problems = check_for_production(load_settings(environ={}, env_file=None))
    text = "\n".join(problems)
    for name in ("GLADIA_API_KEY", "REDIS_URL", "BROKER_PUBLIC_URL", "BROKER_SECRET_KEYS"):
        assert name in text


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("BROKER_SECRET_KEYS", "short", "BROKER_SECRET_KEYS"),
        ("BROKER_SECRET_KEYS", DEVELOPMENT_SECRET, "development key"),
        ("BROKER_CORS_ORIGINS", "*", "BROKER_CORS_ORIGINS"),
        ("BROKER_CORS_ORIGINS", "null", "BROKER_CORS_ORIGINS"),
        ("BROKER_SERVICE_KEYS", "weak", "BROKER_SERVICE_KEYS"),
    ],
)
def test_serve_refuses_unsafe_values(name: str, value: str, named: str) -> None:
    settings = load_settings(environ={**PRODUCTION, name: value}, env_file=None)
    assert any(named in problem for problem in check_for_production(settings))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BROKER_TOKEN_TTL_S", "soon"),
        ("GLADIA_REGION", "mars-north"),
        ("GLADIA_API_URL", "ftp://api.gladia.io"),
        ("BROKER_SESSION_TTL_S", "60"),
        ("BROKER_AUTH_MODES", "magic"),
    ],
)
def test_unreadable_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value}, env_file=None)


def test_a_refused_setting_never_echoes_its_value() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"BROKER_TOKEN_TTL_S": "sekrit-value"}, env_file=None)
    assert "sekrit-value" not in str(raised.value)


def test_the_demo_page_is_off_under_serve_unless_broker_demo_says_true() -> None:
    assert load_settings(environ={}, env_file=None).demo_enabled is False
    assert load_settings(environ={"BROKER_DEMO": "true"}, env_file=None).demo_enabled is True
    with pytest.raises(SettingsError, match="BROKER_DEMO"):
        load_settings(environ={"BROKER_DEMO": "maybe"}, env_file=None)


def test_limit_and_identity_settings_are_read() -> None:
    settings = load_settings(
        environ={
            "BROKER_AUTH_MODES": "token,jwt,gateway",
            "BROKER_JWT_ISSUER": "https://id.example.com/",
            "BROKER_JWT_AUDIENCE": "broker",
            "BROKER_JWT_JWKS_URL": "https://id.example.com/jwks.json",
            "BROKER_JWT_ALGORITHMS": "RS256, ES256",
            "BROKER_JWT_SUBJECT_CLAIM": "email",
            "BROKER_GATEWAY_USER_HEADER": "X-User-Id",
            "BROKER_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
            "BROKER_MAX_LIVE_PER_SUBJECT": "2",
            "BROKER_CREATES_PER_MINUTE": "6",
            "BROKER_ACCOUNT_MAX_LIVE": "25",
            "BROKER_FAILED_ATTEMPTS_PER_MINUTE": "12",
            "BROKER_POLICY_FILE": "/etc/broker/policy.toml",
        },
        env_file=None,
    )
    assert settings.auth_modes == ("token", "jwt", "gateway")
    assert settings.jwt_algorithms == ("RS256", "ES256")
    assert settings.jwt_subject_claim == "email"
    assert settings.gateway_user_header == "x-user-id"
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    assert (settings.max_live_per_subject, settings.creates_per_minute) == (2, 6)
    assert (settings.account_max_live, settings.failed_attempts_per_minute) == (25, 12)
    assert settings.policy_file == "/etc/broker/policy.toml"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BROKER_AUTH_MODES": "jwt"}, "BROKER_JWT_ISSUER"),
        ({"BROKER_AUTH_MODES": "jwt"}, "BROKER_JWT_JWKS_URL"),
        ({"BROKER_AUTH_MODES": "gateway"}, "BROKER_GATEWAY_USER_HEADER"),
        ({"BROKER_JWT_ALGORITHMS": "HS256"}, "BROKER_JWT_ALGORITHMS"),
        ({"BROKER_JWT_ALGORITHMS": "none"}, "BROKER_JWT_ALGORITHMS"),
        ({"BROKER_TRUSTED_PROXIES": "gateway.local"}, "BROKER_TRUSTED_PROXIES"),
        ({"BROKER_GATEWAY_USER_HEADER": "Authorization"}, "BROKER_GATEWAY_USER_HEADER"),
        ({"BROKER_MAX_LIVE_PER_SUBJECT": "0"}, "BROKER_MAX_LIVE_PER_SUBJECT"),
        ({"BROKER_CREATES_PER_MINUTE": "-1"}, "BROKER_CREATES_PER_MINUTE"),
        ({"BROKER_ACCOUNT_MAX_LIVE": "0"}, "BROKER_ACCOUNT_MAX_LIVE"),
        ({"BROKER_LEASE_TTL_S": "many"}, "BROKER_LEASE_TTL_S"),
    ],
)
def test_inconsistent_identity_and_limit_settings_are_refused(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ, env_file=None)


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("BROKER_TRUSTED_PROXIES", "*", "BROKER_TRUSTED_PROXIES"),
        ("BROKER_LEASE_TTL_S", "600", "BROKER_LEASE_TTL_S"),
    ],
)
def test_serve_refuses_unsafe_limit_and_proxy_values(name: str, value: str, named: str) -> None:
    settings = load_settings(environ={**PRODUCTION, name: value}, env_file=None)
    assert any(named in problem for problem in check_for_production(settings))


def test_serve_needs_an_https_jwks_url() -> None:
    environ = {
        **PRODUCTION,
        "BROKER_AUTH_MODES": "jwt",
        "BROKER_JWT_ISSUER": "https://id.example.com/",
        "BROKER_JWT_AUDIENCE": "broker",
        "BROKER_JWT_JWKS_URL": "http://id.example.com/jwks.json",
    }
    problems = check_for_production(load_settings(environ=environ, env_file=None))
    assert any("BROKER_JWT_JWKS_URL" in problem for problem in problems)
