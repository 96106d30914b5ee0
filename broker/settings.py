"""Typed settings, read once from the environment and `.env`, and the checks `serve` runs."""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from broker.errors import SettingsError

# Signs development tokens only; `broker serve` refuses to start while it is configured.
DEVELOPMENT_SECRET = "development-only-insecure-secret-key"  # noqa: S105
MIN_SECRET_LENGTH = 32

GLADIA_REGIONS = ("us-west", "eu-west")
AUTH_MODES = ("token", "jwt", "gateway")
# Asymmetric only: the broker verifies with the identity provider's public keys and can never mint.
JWT_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# A live session lasts at most 3 h at Gladia; its record outlives that by a margin.
GLADIA_MAX_SESSION_S = 3 * 3600
# Callback categories (the `receive_*` flags of Gladia's `callback_config`, without the prefix).
CALLBACK_CATEGORIES = (
    "partial_transcripts",
    "final_transcripts",
    "speech_events",
    "pre_processing_events",
    "realtime_processing_events",
    "post_processing_events",
    "acknowledgments",
    "errors",
    "lifecycle_events",
)
DEFAULT_CALLBACK_EVENTS = (
    "final_transcripts,realtime_processing_events,post_processing_events,lifecycle_events"
)
# A capability URL lives through the session (3 h), its post-processing and the sender's retries.
DEFAULT_CALLBACK_TTL_S = GLADIA_MAX_SESSION_S + 3600 + 24 * 3600
# Processed-markers outlive Svix's retry horizon (about 27.5 h) and manual replays (§1.5 item 5).
DEFAULT_DEDUPE_TTL_S = 4 * 24 * 3600


def _secrets(value: str) -> tuple[Secret, ...]:
    return tuple(Secret(item) for item in CommaSeparatedStrings(value) if item)


def _optional_port(value: str | None) -> int | None:
    return int(value) if value else None


def _strings(value: str) -> tuple[str, ...]:
    return tuple(item for item in CommaSeparatedStrings(value) if item)


@dataclass(frozen=True)
class Settings:
    """Everything the broker is configured with; built by `load_settings`, never mutated."""

    gladia_api_key: Secret | None = None
    gladia_api_url: str = "https://api.gladia.io"
    gladia_region: str | None = None
    gladia_connect_timeout_s: float = 2.0
    gladia_read_timeout_s: float = 10.0
    gladia_total_timeout_s: float = 12.0
    gladia_max_connections: int = 100

    redis_url: str | None = None
    redis_socket_timeout_s: float = 1.0
    redis_connect_timeout_s: float = 1.0
    redis_max_connections: int = 100
    redis_pool_timeout_s: float = 1.0
    redis_health_check_interval_s: int = 15
    redis_cluster: bool = False
    redis_sentinel_password: Secret | None = None

    secret_keys: tuple[Secret, ...] = (Secret(DEVELOPMENT_SECRET),)
    service_keys: tuple[Secret, ...] = ()
    public_url: str | None = None
    auth_modes: tuple[str, ...] = ("token",)
    token_ttl_s: int = 3600
    token_max_ttl_s: int = 24 * 3600
    cors_origins: tuple[str, ...] = ()

    session_ttl_s: int = GLADIA_MAX_SESSION_S + 30 * 60
    result_ttl_s: int = 7 * 24 * 3600
    max_body_bytes: int = 64 * 1024
    max_channels: int = 8
    sessions_index_max: int = 1000
    retry_after_s: int = 5
    # `broker serve` serves the /demo page only when this is on; `broker dev` always does.
    demo_enabled: bool = False

    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    jwt_subject_claim: str = "sub"
    jwt_algorithms: tuple[str, ...] = ("RS256",)
    jwt_leeway_s: int = 30
    jwt_jwks_cache_s: int = 300
    jwt_jwks_timeout_s: float = 2.0
    gateway_user_header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")

    max_live_per_subject: int = 3
    creates_per_minute: int = 10
    account_max_live: int = 30
    failed_attempts_per_minute: int = 30
    lease_ttl_s: int = GLADIA_MAX_SESSION_S + 5 * 60
    idempotency_ttl_s: int = 24 * 3600
    policy_file: str | None = None

    callback_events: tuple[str, ...] = tuple(DEFAULT_CALLBACK_EVENTS.split(","))
    callback_ttl_s: int = DEFAULT_CALLBACK_TTL_S
    callback_max_body_bytes: int = 1024 * 1024
    dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S
    events_max: int = 10_000
    events_block_ms: int = 500
    sse_heartbeat_s: float = 15.0
    sse_max_streams: int = 50
    gladia_webhook_secrets: tuple[Secret, ...] = ()
    relay_url: str | None = None
    relay_secret: Secret | None = None
    relay_timeout_s: float = 10.0
    relay_backoff_s: float = 1.0
    relay_max_backoff_s: float = 600.0
    worker_poll_s: float = 1.0
    log_level: str = "INFO"
    metrics_port: int | None = None
    shutdown_timeout_s: int = 15

    @property
    def gladia_origin(self) -> str:
        parts = urlsplit(self.gladia_api_url)
        return f"{parts.scheme}://{parts.netloc}"

    def all_secrets(self) -> tuple[str, ...]:
        """Every secret value the broker holds, for the log redaction layer."""
        held = [*self.secret_keys, *self.service_keys, *self.gladia_webhook_secrets]
        if self.gladia_api_key is not None:
            held.append(self.gladia_api_key)
        if self.relay_secret is not None:
            held.append(self.relay_secret)
        if self.redis_sentinel_password is not None:
            held.append(self.redis_sentinel_password)
        redis_password = urlsplit(self.redis_url or "").password
        if redis_password:
            held.append(Secret(unquote(redis_password)))
        return tuple(str(secret) for secret in held if str(secret))


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read and check the settings; raises SettingsError naming the setting that is wrong."""
    env_path = Path(env_file) if env_file is not None else None
    config = Config(
        env_path if env_path is not None and env_path.is_file() else None,
        environ=dict(os.environ if environ is None else environ),
    )
    defaults = Settings()
    try:
        settings = Settings(
            gladia_api_key=config("GLADIA_API_KEY", cast=Secret, default=None) or None,
            gladia_api_url=config("GLADIA_API_URL", default=defaults.gladia_api_url).rstrip("/"),
            gladia_region=config("GLADIA_REGION", default=None) or None,
            gladia_connect_timeout_s=config(
                "GLADIA_CONNECT_TIMEOUT_S", cast=float, default=defaults.gladia_connect_timeout_s
            ),
            gladia_read_timeout_s=config(
                "GLADIA_READ_TIMEOUT_S", cast=float, default=defaults.gladia_read_timeout_s
            ),
            gladia_total_timeout_s=config(
                "GLADIA_TOTAL_TIMEOUT_S", cast=float, default=defaults.gladia_total_timeout_s
            ),
            gladia_max_connections=config(
                "GLADIA_MAX_CONNECTIONS", cast=int, default=defaults.gladia_max_connections
            ),
            redis_url=config("REDIS_URL", default=None) or None,
            redis_socket_timeout_s=config(
                "REDIS_SOCKET_TIMEOUT_S", cast=float, default=defaults.redis_socket_timeout_s
            ),
            redis_connect_timeout_s=config(
                "REDIS_CONNECT_TIMEOUT_S", cast=float, default=defaults.redis_connect_timeout_s
            ),
            redis_max_connections=config(
                "REDIS_MAX_CONNECTIONS", cast=int, default=defaults.redis_max_connections
            ),
            redis_pool_timeout_s=config(
                "REDIS_POOL_TIMEOUT_S", cast=float, default=defaults.redis_pool_timeout_s
            ),
            redis_health_check_interval_s=config(
                "REDIS_HEALTH_CHECK_INTERVAL_S",
                cast=int,
                default=defaults.redis_health_check_interval_s,
            ),
            redis_cluster=config("REDIS_CLUSTER", cast=bool, default=False),
            redis_sentinel_password=config("REDIS_SENTINEL_PASSWORD", cast=Secret, default=None)
            or None,
            secret_keys=config("BROKER_SECRET_KEYS", cast=_secrets, default=DEVELOPMENT_SECRET),
            service_keys=config("BROKER_SERVICE_KEYS", cast=_secrets, default=()),
            public_url=(config("BROKER_PUBLIC_URL", default=None) or "").rstrip("/") or None,
            auth_modes=config("BROKER_AUTH_MODES", cast=_strings, default="token"),
            token_ttl_s=config("BROKER_TOKEN_TTL", cast=int, default=defaults.token_ttl_s),
            token_max_ttl_s=config(
                "BROKER_TOKEN_MAX_TTL", cast=int, default=defaults.token_max_ttl_s
            ),
            cors_origins=config("BROKER_CORS_ORIGINS", cast=_strings, default=()),
            session_ttl_s=config("BROKER_SESSION_TTL", cast=int, default=defaults.session_ttl_s),
            result_ttl_s=config("BROKER_RESULT_TTL", cast=int, default=defaults.result_ttl_s),
            max_body_bytes=config(
                "BROKER_MAX_BODY_BYTES", cast=int, default=defaults.max_body_bytes
            ),
            max_channels=config("BROKER_MAX_CHANNELS", cast=int, default=defaults.max_channels),
            sessions_index_max=config(
                "BROKER_SESSIONS_INDEX_MAX", cast=int, default=defaults.sessions_index_max
            ),
            retry_after_s=config("BROKER_RETRY_AFTER", cast=int, default=defaults.retry_after_s),
            demo_enabled=config("BROKER_DEMO", cast=bool, default=False),
            jwt_issuer=config("BROKER_JWT_ISSUER", default=None) or None,
            jwt_audience=config("BROKER_JWT_AUDIENCE", default=None) or None,
            jwt_jwks_url=config("BROKER_JWT_JWKS_URL", default=None) or None,
            jwt_subject_claim=config("BROKER_JWT_SUBJECT_CLAIM", default="sub"),
            jwt_algorithms=config("BROKER_JWT_ALGORITHMS", cast=_strings, default="RS256"),
            jwt_leeway_s=config("BROKER_JWT_LEEWAY", cast=int, default=defaults.jwt_leeway_s),
            jwt_jwks_cache_s=config(
                "BROKER_JWT_JWKS_CACHE_TTL", cast=int, default=defaults.jwt_jwks_cache_s
            ),
            jwt_jwks_timeout_s=config(
                "BROKER_JWT_JWKS_TIMEOUT_S", cast=float, default=defaults.jwt_jwks_timeout_s
            ),
            gateway_user_header=(
                config("BROKER_GATEWAY_USER_HEADER", default="").strip().lower() or None
            ),
            trusted_proxies=config(
                "BROKER_TRUSTED_PROXIES", cast=_strings, default="127.0.0.1,::1"
            ),
            max_live_per_subject=config(
                "BROKER_MAX_LIVE_PER_SUBJECT", cast=int, default=defaults.max_live_per_subject
            ),
            creates_per_minute=config(
                "BROKER_CREATES_PER_MINUTE", cast=int, default=defaults.creates_per_minute
            ),
            account_max_live=config(
                "BROKER_ACCOUNT_MAX_LIVE", cast=int, default=defaults.account_max_live
            ),
            failed_attempts_per_minute=config(
                "BROKER_FAILED_ATTEMPTS_PER_MINUTE",
                cast=int,
                default=defaults.failed_attempts_per_minute,
            ),
            lease_ttl_s=config("BROKER_LEASE_TTL", cast=int, default=defaults.lease_ttl_s),
            idempotency_ttl_s=config(
                "BROKER_IDEMPOTENCY_TTL", cast=int, default=defaults.idempotency_ttl_s
            ),
            policy_file=config("BROKER_POLICY_FILE", default=None) or None,
            callback_events=config(
                "BROKER_CALLBACK_EVENTS", cast=_strings, default=DEFAULT_CALLBACK_EVENTS
            ),
            callback_ttl_s=config("BROKER_CALLBACK_TTL", cast=int, default=defaults.callback_ttl_s),
            callback_max_body_bytes=config(
                "BROKER_CALLBACK_MAX_BODY_BYTES", cast=int, default=defaults.callback_max_body_bytes
            ),
            dedupe_ttl_s=config("BROKER_DEDUPE_TTL", cast=int, default=defaults.dedupe_ttl_s),
            events_max=config("BROKER_EVENTS_MAX", cast=int, default=defaults.events_max),
            events_block_ms=config(
                "BROKER_EVENTS_BLOCK_MS", cast=int, default=defaults.events_block_ms
            ),
            sse_heartbeat_s=config(
                "BROKER_SSE_HEARTBEAT_S", cast=float, default=defaults.sse_heartbeat_s
            ),
            sse_max_streams=config(
                "BROKER_SSE_MAX_STREAMS", cast=int, default=defaults.sse_max_streams
            ),
            gladia_webhook_secrets=config("GLADIA_WEBHOOK_SECRETS", cast=_secrets, default=""),
            relay_url=(config("BROKER_RELAY_URL", default=None) or "").strip() or None,
            relay_secret=config("BROKER_RELAY_SECRET", cast=Secret, default=None) or None,
            relay_timeout_s=config(
                "BROKER_RELAY_TIMEOUT_S", cast=float, default=defaults.relay_timeout_s
            ),
            relay_backoff_s=config(
                "BROKER_RELAY_BACKOFF_S", cast=float, default=defaults.relay_backoff_s
            ),
            relay_max_backoff_s=config(
                "BROKER_RELAY_MAX_BACKOFF_S", cast=float, default=defaults.relay_max_backoff_s
            ),
            worker_poll_s=config(
                "BROKER_WORKER_POLL_S", cast=float, default=defaults.worker_poll_s
            ),
            log_level=config("LOG_LEVEL", default=defaults.log_level).upper(),
            metrics_port=config("BROKER_METRICS_PORT", cast=_optional_port, default=""),
            shutdown_timeout_s=config(
                "BROKER_SHUTDOWN_TIMEOUT_S", cast=int, default=defaults.shutdown_timeout_s
            ),
        )
    except (ValueError, KeyError) as exc:
        # Starlette's message names the setting and its value; the value may be a secret.
        name = str(exc).split("'")[1] if "'" in str(exc) else "a setting"
        raise SettingsError(f"{name} has a value of the wrong type") from None
    problems = check_consistency(settings)
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def check_consistency(settings: Settings) -> list[str]:
    """Problems that make any run impossible, whatever the mode."""
    problems = []
    if urlsplit(settings.gladia_api_url).scheme not in ("http", "https"):
        problems.append("GLADIA_API_URL must be an http(s) URL")
    if settings.gladia_region not in (None, *GLADIA_REGIONS):
        problems.append(f"GLADIA_REGION must be one of {', '.join(GLADIA_REGIONS)}")
    if not settings.secret_keys:
        problems.append("BROKER_SECRET_KEYS must hold at least one key")
    unknown_modes = [mode for mode in settings.auth_modes if mode not in AUTH_MODES]
    if unknown_modes or not settings.auth_modes:
        problems.append(f"BROKER_AUTH_MODES must be a list of {', '.join(AUTH_MODES)}")
    if settings.public_url and urlsplit(settings.public_url).scheme not in ("http", "https"):
        problems.append("BROKER_PUBLIC_URL must be an http(s) URL")
    if not 1 <= settings.max_channels <= 8:
        problems.append("BROKER_MAX_CHANNELS must be between 1 and 8")
    for name, value in (
        ("BROKER_TOKEN_TTL", settings.token_ttl_s),
        ("BROKER_SESSION_TTL", settings.session_ttl_s),
        ("BROKER_RESULT_TTL", settings.result_ttl_s),
        ("BROKER_MAX_BODY_BYTES", settings.max_body_bytes),
    ):
        if value <= 0:
            problems.append(f"{name} must be positive")
    if settings.token_ttl_s > settings.token_max_ttl_s:
        problems.append("BROKER_TOKEN_TTL must not exceed BROKER_TOKEN_MAX_TTL")
    problems.extend(_check_operations(settings))
    if settings.session_ttl_s < GLADIA_MAX_SESSION_S:
        problems.append("BROKER_SESSION_TTL must cover a whole live session (10800 s or more)")
    problems.extend(_identity_problems(settings))
    for name, value in (
        ("BROKER_MAX_LIVE_PER_SUBJECT", settings.max_live_per_subject),
        ("BROKER_CREATES_PER_MINUTE", settings.creates_per_minute),
        ("BROKER_ACCOUNT_MAX_LIVE", settings.account_max_live),
        ("BROKER_FAILED_ATTEMPTS_PER_MINUTE", settings.failed_attempts_per_minute),
        ("BROKER_LEASE_TTL", settings.lease_ttl_s),
        ("BROKER_IDEMPOTENCY_TTL", settings.idempotency_ttl_s),
    ):
        if value < 1:
            problems.append(f"{name} must be 1 or more")
    problems.extend(_callback_problems(settings))
    return problems


def _identity_problems(settings: Settings) -> list[str]:
    problems = []
    if "jwt" in settings.auth_modes:
        for name, value in (
            ("BROKER_JWT_ISSUER", settings.jwt_issuer),
            ("BROKER_JWT_AUDIENCE", settings.jwt_audience),
            ("BROKER_JWT_JWKS_URL", settings.jwt_jwks_url),
        ):
            if not value:
                problems.append(f"{name} is required by BROKER_AUTH_MODES=jwt")
        if settings.jwt_jwks_url and urlsplit(settings.jwt_jwks_url).scheme not in (
            "http",
            "https",
        ):
            problems.append("BROKER_JWT_JWKS_URL must be an http(s) URL")
        if not settings.jwt_subject_claim.strip():
            problems.append("BROKER_JWT_SUBJECT_CLAIM must name a claim")
    unknown_algorithms = [a for a in settings.jwt_algorithms if a not in JWT_ALGORITHMS]
    if unknown_algorithms or not settings.jwt_algorithms:
        problems.append(f"BROKER_JWT_ALGORITHMS must be a list of {', '.join(JWT_ALGORITHMS)}")
    if "gateway" in settings.auth_modes and not settings.gateway_user_header:
        problems.append("BROKER_GATEWAY_USER_HEADER is required by BROKER_AUTH_MODES=gateway")
    if settings.gateway_user_header in ("authorization", "cookie", "host"):
        problems.append("BROKER_GATEWAY_USER_HEADER must name a header set by the gateway")
    if not all(_is_network(item) for item in settings.trusted_proxies):
        problems.append("BROKER_TRUSTED_PROXIES must list IP addresses or CIDR networks")
    return problems


def _is_network(value: str) -> bool:
    if value == "*":
        return True
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _callback_problems(settings: Settings) -> list[str]:
    """Callbacks, webhooks, the events API and the relay."""
    problems = []
    unknown = [name for name in settings.callback_events if name not in CALLBACK_CATEGORIES]
    if unknown:
        problems.append(
            f"BROKER_CALLBACK_EVENTS must be a list of {', '.join(CALLBACK_CATEGORIES)}"
        )
    if settings.callback_ttl_s < GLADIA_MAX_SESSION_S:
        problems.append("BROKER_CALLBACK_TTL must cover a whole live session (10800 s or more)")
    for name, value in (
        ("BROKER_CALLBACK_MAX_BODY_BYTES", settings.callback_max_body_bytes),
        ("BROKER_DEDUPE_TTL", settings.dedupe_ttl_s),
        ("BROKER_EVENTS_MAX", settings.events_max),
        ("BROKER_SSE_MAX_STREAMS", settings.sse_max_streams),
        ("BROKER_SSE_HEARTBEAT_S", settings.sse_heartbeat_s),
        ("BROKER_RELAY_TIMEOUT_S", settings.relay_timeout_s),
        ("BROKER_RELAY_BACKOFF_S", settings.relay_backoff_s),
        ("BROKER_WORKER_POLL_S", settings.worker_poll_s),
    ):
        if value <= 0:
            problems.append(f"{name} must be positive")
    # A blocked XREAD must answer before the Redis socket timeout gives up on it.
    if not 0 < settings.events_block_ms < settings.redis_socket_timeout_s * 1000:
        problems.append("BROKER_EVENTS_BLOCK_MS must be positive and below REDIS_SOCKET_TIMEOUT_S")
    for secret in settings.gladia_webhook_secrets:
        if not _is_webhook_secret(str(secret)):
            problems.append("GLADIA_WEBHOOK_SECRETS holds a value that is not a whsec_ secret")
            break
    if settings.relay_url is not None:
        if urlsplit(settings.relay_url).scheme not in ("http", "https"):
            problems.append("BROKER_RELAY_URL must be an http(s) URL")
        if settings.relay_secret is None:
            problems.append("BROKER_RELAY_SECRET is required with BROKER_RELAY_URL")
    if settings.relay_secret is not None and not _is_webhook_secret(str(settings.relay_secret)):
        problems.append("BROKER_RELAY_SECRET must be a whsec_ secret of 24 to 64 random bytes")
    return problems


def _is_webhook_secret(value: str) -> bool:
    """A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 bytes."""
    if not value.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except ValueError:
        return False
    return 24 <= len(key) <= 64


def check_for_production(settings: Settings) -> list[str]:
    """What `broker serve` refuses to start with, each naming its setting."""
    problems = []
    if settings.gladia_api_key is None:
        problems.append("GLADIA_API_KEY is missing")
    if not settings.redis_url:
        problems.append("REDIS_URL is missing (the in-memory store is for `broker dev` only)")
    if not settings.public_url:
        problems.append("BROKER_PUBLIC_URL is missing")
    for secret in settings.secret_keys:
        value = str(secret)
        if value == DEVELOPMENT_SECRET:
            problems.append("BROKER_SECRET_KEYS holds the development key")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"BROKER_SECRET_KEYS holds a key shorter than {MIN_SECRET_LENGTH}")
    if any(len(str(key)) < MIN_SECRET_LENGTH for key in settings.service_keys):
        problems.append(f"BROKER_SERVICE_KEYS holds a key shorter than {MIN_SECRET_LENGTH}")
    if "*" in settings.cors_origins:
        problems.append("BROKER_CORS_ORIGINS must list exact origins, not '*'")
    if "null" in settings.cors_origins:
        problems.append("BROKER_CORS_ORIGINS must not allow the 'null' origin")
    if "*" in settings.trusted_proxies:
        problems.append("BROKER_TRUSTED_PROXIES must list the gateway's addresses, not '*'")
    if "jwt" in settings.auth_modes and urlsplit(settings.jwt_jwks_url or "").scheme != "https":
        problems.append("BROKER_JWT_JWKS_URL must be an https URL")
    if settings.lease_ttl_s < GLADIA_MAX_SESSION_S:
        problems.append("BROKER_LEASE_TTL must cover a whole live session (10800 s or more)")
    return problems


def _check_operations(settings: Settings) -> list[str]:
    """Redis topology, logging and process settings that no run can work with."""
    problems = []
    scheme = urlsplit(settings.redis_url or "").scheme
    if settings.redis_url and scheme not in REDIS_SCHEMES:
        problems.append(f"REDIS_URL must start with one of {', '.join(REDIS_SCHEMES)}")
    if settings.redis_cluster and scheme not in ("redis", "rediss"):
        problems.append("REDIS_CLUSTER needs a redis:// or rediss:// REDIS_URL (a seed node)")
    if settings.redis_health_check_interval_s < 0:
        problems.append("REDIS_HEALTH_CHECK_INTERVAL_S must not be negative")
    if settings.log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if settings.metrics_port is not None and not 1 <= settings.metrics_port <= 65535:
        problems.append("BROKER_METRICS_PORT must be a TCP port")
    if settings.shutdown_timeout_s < 0:
        problems.append("BROKER_SHUTDOWN_TIMEOUT_S must not be negative")
    return problems
