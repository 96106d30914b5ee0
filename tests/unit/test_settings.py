import pytest

from broker.settings import (
    DEVELOPMENT_SECRET,
    SettingsError,
    check_for_production,
    load_settings,
)

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


def test_the_env_file_is_read(tmp_path: pytest.TempPathFactory) -> None:
    env_file = tmp_path / ".env"  # type: ignore[operator]
    env_file.write_text("GLADIA_REGION=us-west\nBROKER_TOKEN_TTL=600\n")
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
        ("BROKER_TOKEN_TTL", "soon"),
        ("GLADIA_REGION", "mars-north"),
        ("GLADIA_API_URL", "ftp://api.gladia.io"),
        ("BROKER_SESSION_TTL", "60"),
        ("BROKER_AUTH_MODES", "magic"),
    ],
)
def test_unreadable_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value}, env_file=None)


def test_a_refused_setting_never_echoes_its_value() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"BROKER_TOKEN_TTL": "sekrit-value"}, env_file=None)
    assert "sekrit-value" not in str(raised.value)


def test_the_demo_page_is_off_under_serve_unless_broker_demo_says_true() -> None:
    assert load_settings(environ={}, env_file=None).demo_enabled is False
    assert load_settings(environ={"BROKER_DEMO": "true"}, env_file=None).demo_enabled is True
    with pytest.raises(SettingsError, match="BROKER_DEMO"):
        load_settings(environ={"BROKER_DEMO": "maybe"}, env_file=None)
