"""Typed settings, read once from the environment and `.env`, and the checks `serve` runs.

Each field of `Settings` is declared once, with its environment variable, default, parser,
bounds and meaning; `SETTINGS_TABLE` lists those rows for `load_settings` and for the tests
that hold `.env.example` and the READMEs to them.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from broker.errors import SettingsError

logger = logging.getLogger("broker.settings")

# Signs development tokens only; `broker serve` refuses to start while it is configured.
DEVELOPMENT_SECRET = "development-only-insecure-secret-key"  # noqa: S105  # public by design
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


ParsedValue = TypeVar("ParsedValue")


def _secrets(text: str) -> tuple[Secret, ...]:
    return tuple(Secret(item) for item in CommaSeparatedStrings(text) if item)


def _strings(text: str) -> tuple[str, ...]:
    return tuple(item for item in CommaSeparatedStrings(text) if item)


def _optional_secret(text: str) -> Secret | None:
    return Secret(text) if text else None


def _optional_text(text: str) -> str | None:
    return text or None


def _optional_port(text: str) -> int | None:
    return int(text) if text else None


def _boolean(text: str) -> bool:
    # The words starlette's Config accepts for a bool, so existing `.env` files keep working.
    word = text.lower()
    if word not in ("true", "1", "false", "0"):
        raise ValueError("not a boolean")
    return word in ("true", "1")


def _origin(text: str) -> str:
    return text.rstrip("/")


def _optional_origin(text: str) -> str | None:
    return text.rstrip("/") or None


def _optional_stripped(text: str) -> str | None:
    return text.strip() or None


def _optional_header_name(text: str) -> str | None:
    return text.strip().lower() or None


def _seconds_as_ms(text: str) -> int:
    """Seconds, as a setting spells them, held as the whole milliseconds Redis takes."""
    seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError("not a number of seconds")
    return round(seconds * 1000)


@dataclass(frozen=True)
class FormerName:
    """A setting's variable before a rename, still read for a deprecation period.

    Setting it logs a warning at start naming the new variable; setting both to different
    values is refused. `parse` reads a former name that spelled another unit (milliseconds).
    """

    env_name: str
    parse: Callable[[str], object] | None = None


@dataclass(frozen=True)
class Setting:
    """One row of the settings table: an environment variable and the `Settings` field it fills."""

    env_name: str
    attribute: str
    default: object
    parse: Callable[[str], object]
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    # Strictly greater than: for a float that must be positive, where no inclusive minimum fits.
    above: float | None = None
    # The variable's name before a rename (every duration is spelled `_S` now).
    former: FormerName | None = None

    def bounds(self) -> str | None:
        """The bounds in words (`between 1 and 8`), or None when the setting has none."""
        if self.minimum is not None and self.maximum is not None:
            return f"between {self.minimum} and {self.maximum}"
        if self.minimum is not None:
            return f"{self.minimum} or more"
        if self.maximum is not None:
            return f"{self.maximum} or less"
        if self.above is not None:
            return f"above {self.above}"
        return None

    def admits(self, value: float) -> bool:
        """Whether the value lies within the bounds."""
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
        )


def _setting(
    env_name: str,
    default: ParsedValue,
    parse: Callable[[str], ParsedValue],
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    former: FormerName | None = None,
) -> ParsedValue:
    """A `Settings` field read from `env_name`; its row rides in the field's metadata."""
    row = {
        "env_name": env_name,
        "parse": parse,
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "above": above,
        "former": former,
    }
    return field(default=default, metadata=row)


@dataclass(frozen=True)
class Settings:
    """Everything the broker is configured with; built by `load_settings`, never mutated."""

    gladia_api_key: Secret | None = _setting(
        "GLADIA_API_KEY", None, _optional_secret, "The Gladia API key, held by the broker only."
    )
    gladia_api_url: str = _setting(
        "GLADIA_API_URL", "https://api.gladia.io", _origin, "Gladia's API origin."
    )
    gladia_region: str | None = _setting(
        "GLADIA_REGION", None, _optional_text, "Region of sessions whose client names none."
    )
    gladia_connect_timeout_s: float = _setting(
        "GLADIA_CONNECT_TIMEOUT_S", 2.0, float, "Seconds to open a connection to Gladia.", above=0
    )
    gladia_read_timeout_s: float = _setting(
        "GLADIA_READ_TIMEOUT_S",
        10.0,
        float,
        "Seconds Gladia may stay silent while answering.",
        above=0,
    )
    gladia_total_timeout_s: float = _setting(
        "GLADIA_TOTAL_TIMEOUT_S",
        12.0,
        float,
        "Seconds one call to Gladia may take in all.",
        above=0,
    )
    gladia_max_connections: int = _setting(
        "GLADIA_MAX_CONNECTIONS", 100, int, "Connections to Gladia kept by one process.", minimum=1
    )

    redis_url: str | None = _setting(
        "REDIS_URL", None, _optional_text, "Where every session, result and limit lives."
    )
    redis_socket_timeout_s: float = _setting(
        "REDIS_SOCKET_TIMEOUT_S", 1.0, float, "Seconds one Redis command may take.", above=0
    )
    redis_connect_timeout_s: float = _setting(
        "REDIS_CONNECT_TIMEOUT_S", 1.0, float, "Seconds to open a connection to Redis.", above=0
    )
    redis_max_connections: int = _setting(
        "REDIS_MAX_CONNECTIONS",
        100,
        int,
        "Connections to Redis in one process's pool (scripts go down one connection more).",
        minimum=1,
    )
    redis_pool_timeout_s: float = _setting(
        "REDIS_POOL_TIMEOUT_S",
        1.0,
        float,
        "Seconds a request waits for a free Redis connection.",
        above=0,
    )
    redis_health_check_interval_s: int = _setting(
        "REDIS_HEALTH_CHECK_INTERVAL_S",
        15,
        int,
        "Idle seconds after which a Redis connection is checked with PING before use.",
        minimum=0,
    )
    redis_cluster: bool = _setting(
        "REDIS_CLUSTER", False, _boolean, "Whether REDIS_URL is a node of a Redis Cluster."
    )
    redis_sentinel_password: Secret | None = _setting(
        "REDIS_SENTINEL_PASSWORD", None, _optional_secret, "Password of the Sentinels themselves."
    )
    legacy_records: bool = _setting(
        "BROKER_LEGACY_RECORDS",
        False,
        _boolean,
        "Whether session records are written as JSON with a callback binding, as versions "
        "before 2026-12-07 read them, while such versions still run beside this one.",
    )

    secret_keys: tuple[Secret, ...] = _setting(
        "BROKER_SECRET_KEYS",
        (Secret(DEVELOPMENT_SECRET),),
        _secrets,
        "Keys that sign user tokens: the first signs, all verify.",
    )
    service_keys: tuple[Secret, ...] = _setting(
        "BROKER_SERVICE_KEYS", (), _secrets, "Keys the app's backend mints user tokens with."
    )
    public_url: str | None = _setting(
        "BROKER_PUBLIC_URL", None, _optional_origin, "The broker's public origin, for callbacks."
    )
    auth_modes: tuple[str, ...] = _setting(
        "BROKER_AUTH_MODES", ("token",), _strings, "How end users are identified."
    )
    token_ttl_s: int = _setting(
        "BROKER_TOKEN_TTL_S",
        3600,
        int,
        "Seconds a minted user token lasts by default.",
        minimum=1,
        former=FormerName("BROKER_TOKEN_TTL"),
    )
    token_max_ttl_s: int = _setting(
        "BROKER_TOKEN_MAX_TTL_S",
        24 * 3600,
        int,
        "Most seconds a minted user token may ask to last.",
        former=FormerName("BROKER_TOKEN_MAX_TTL"),
    )
    cors_origins: tuple[str, ...] = _setting(
        "BROKER_CORS_ORIGINS", (), _strings, "Browser origins allowed by CORS, exactly."
    )

    session_ttl_s: int = _setting(
        "BROKER_SESSION_TTL_S",
        GLADIA_MAX_SESSION_S + 30 * 60,
        int,
        "Seconds a session record is kept: a whole live session plus a margin.",
        minimum=GLADIA_MAX_SESSION_S,
        former=FormerName("BROKER_SESSION_TTL"),
    )
    result_ttl_s: int = _setting(
        "BROKER_RESULT_TTL_S",
        7 * 24 * 3600,
        int,
        "Seconds a final result is kept after its session is done.",
        minimum=1,
        former=FormerName("BROKER_RESULT_TTL"),
    )
    max_body_bytes: int = _setting(
        "BROKER_MAX_BODY_BYTES",
        64 * 1024,
        int,
        "Largest request body accepted, in bytes.",
        minimum=1,
    )
    max_channels: int = _setting(
        "BROKER_MAX_CHANNELS",
        8,
        int,
        "Most audio channels a client may ask for.",
        minimum=1,
        maximum=8,
    )
    allowed_models: tuple[str, ...] = _setting(
        "BROKER_ALLOWED_MODELS",
        ("solaria-1",),
        _strings,
        "Gladia models a client may name in `model` (none: Gladia's default only).",
    )
    sessions_index_max: int = _setting(
        "BROKER_SESSIONS_INDEX_MAX", 1000, int, "Most sessions listed per user.", minimum=1
    )
    retry_after_s: int = _setting(
        "BROKER_RETRY_AFTER_S",
        5,
        int,
        "Retry-After seconds when Redis or Gladia is unavailable.",
        minimum=1,
        former=FormerName("BROKER_RETRY_AFTER"),
    )
    demo_enabled: bool = _setting(
        "BROKER_DEMO", False, _boolean, "Whether `broker serve` serves /demo (`dev` always does)."
    )

    jwt_issuer: str | None = _setting(
        "BROKER_JWT_ISSUER", None, _optional_text, "jwt mode: the `iss` every token must carry."
    )
    jwt_audience: str | None = _setting(
        "BROKER_JWT_AUDIENCE", None, _optional_text, "jwt mode: the `aud` every token must carry."
    )
    jwt_jwks_url: str | None = _setting(
        "BROKER_JWT_JWKS_URL", None, _optional_text, "jwt mode: where the signing keys are."
    )
    jwt_subject_claim: str = _setting(
        "BROKER_JWT_SUBJECT_CLAIM", "sub", str, "jwt mode: the claim that names the user."
    )
    jwt_algorithms: tuple[str, ...] = _setting(
        "BROKER_JWT_ALGORITHMS", ("RS256",), _strings, "jwt mode: accepted signing algorithms."
    )
    jwt_leeway_s: int = _setting(
        "BROKER_JWT_LEEWAY_S",
        30,
        int,
        "jwt mode: seconds of clock skew tolerated on exp, nbf and iat.",
        minimum=0,
        former=FormerName("BROKER_JWT_LEEWAY"),
    )
    jwt_jwks_cache_s: int = _setting(
        "BROKER_JWT_JWKS_CACHE_TTL_S",
        300,
        int,
        "jwt mode: seconds the signing keys are cached.",
        minimum=1,
        former=FormerName("BROKER_JWT_JWKS_CACHE_TTL"),
    )
    jwt_jwks_timeout_s: float = _setting(
        "BROKER_JWT_JWKS_TIMEOUT_S",
        2.0,
        float,
        "jwt mode: seconds one fetch of the keys may take.",
        above=0,
    )
    jwt_ca_file: str | None = _setting(
        "BROKER_JWT_CA_FILE",
        None,
        _optional_text,
        "jwt mode: CA certificates (PEM) trusted for the JWKS URL, besides the public ones.",
    )
    gateway_user_header: str | None = _setting(
        "BROKER_GATEWAY_USER_HEADER",
        None,
        _optional_header_name,
        "gateway mode: the header the gateway sets to the user's id.",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        "BROKER_TRUSTED_PROXIES",
        ("127.0.0.1", "::1"),
        _strings,
        "The gateway's addresses: the only peers whose forwarded headers are believed.",
    )

    max_live_per_subject: int = _setting(
        "BROKER_MAX_LIVE_PER_SUBJECT", 3, int, "Live sessions one user may hold.", minimum=1
    )
    creates_per_minute: int = _setting(
        "BROKER_CREATES_PER_MINUTE", 10, int, "Creates one user may make in 60 s.", minimum=1
    )
    budget_seconds_per_day: int = _setting(
        "BROKER_BUDGET_SECONDS_PER_DAY",
        0,
        int,
        "Audio seconds (times channels) of one user's finished sessions per UTC day; 0: none.",
        minimum=0,
    )
    reads_per_minute: int = _setting(
        "BROKER_READS_PER_MINUTE",
        600,
        int,
        "Reads of lists, results and events one user may make in 60 s.",
        minimum=1,
    )
    account_max_live: int = _setting(
        "BROKER_ACCOUNT_MAX_LIVE", 30, int, "Live sessions of the whole Gladia account.", minimum=1
    )
    failed_attempts_per_minute: int = _setting(
        "BROKER_FAILED_ATTEMPTS_PER_MINUTE",
        30,
        int,
        "Failed authentications and misses one client address may get in 60 s.",
        minimum=1,
    )
    lease_ttl_s: int = _setting(
        "BROKER_LEASE_TTL_S",
        GLADIA_MAX_SESSION_S + 5 * 60,
        int,
        "Seconds a live-session lease lasts unless the session ends first.",
        minimum=1,
        former=FormerName("BROKER_LEASE_TTL"),
    )
    idempotency_ttl_s: int = _setting(
        "BROKER_IDEMPOTENCY_TTL_S",
        24 * 3600,
        int,
        "Seconds an Idempotency-Key is kept.",
        minimum=1,
        former=FormerName("BROKER_IDEMPOTENCY_TTL"),
    )
    policy_file: str | None = _setting(
        "BROKER_POLICY_FILE", None, _optional_text, "What clients may ask Gladia for (JSON, TOML)."
    )

    callback_events: tuple[str, ...] = _setting(
        "BROKER_CALLBACK_EVENTS",
        tuple(DEFAULT_CALLBACK_EVENTS.split(",")),
        _strings,
        "Which Gladia callbacks each session sends to the broker.",
    )
    callback_ttl_s: int = _setting(
        "BROKER_CALLBACK_TTL_S",
        DEFAULT_CALLBACK_TTL_S,
        int,
        "Seconds a callback URL stays valid.",
        minimum=GLADIA_MAX_SESSION_S,
        former=FormerName("BROKER_CALLBACK_TTL"),
    )
    callback_max_body_bytes: int = _setting(
        "BROKER_CALLBACK_MAX_BODY_BYTES",
        1024 * 1024,
        int,
        "Largest callback body accepted, in bytes.",
        minimum=1,
    )
    dedupe_ttl_s: int = _setting(
        "BROKER_DEDUPE_TTL_S",
        DEFAULT_DEDUPE_TTL_S,
        int,
        "Seconds a delivery is remembered, to drop its repeats.",
        minimum=1,
        former=FormerName("BROKER_DEDUPE_TTL"),
    )
    events_max: int = _setting(
        "BROKER_EVENTS_MAX", 10_000, int, "Events kept per session.", minimum=1
    )
    # Held in milliseconds, as Redis' XREAD BLOCK takes it; set in seconds like every duration.
    events_block_ms: int = _setting(
        "BROKER_EVENTS_BLOCK_S",
        500,
        _seconds_as_ms,
        "Seconds one read of an event stream waits for news (to the millisecond).",
        above=0,
        former=FormerName("BROKER_EVENTS_BLOCK_MS", parse=int),
    )
    sse_heartbeat_s: float = _setting(
        "BROKER_SSE_HEARTBEAT_S",
        15.0,
        float,
        "Seconds between keep-alive comments on an open event stream.",
        above=0,
    )
    sse_max_streams: int = _setting(
        "BROKER_SSE_MAX_STREAMS", 50, int, "Event streams one instance keeps open.", minimum=1
    )
    gladia_webhook_secrets: tuple[Secret, ...] = _setting(
        "GLADIA_WEBHOOK_SECRETS", (), _secrets, "Signing secrets of Gladia's account webhooks."
    )
    relay_url: str | None = _setting(
        "BROKER_RELAY_URL", None, _optional_stripped, "Where every stored event is relayed."
    )
    relay_secret: Secret | None = _setting(
        "BROKER_RELAY_SECRET", None, _optional_secret, "The relay's signing secret (whsec_…)."
    )
    relay_timeout_s: float = _setting(
        "BROKER_RELAY_TIMEOUT_S", 10.0, float, "Seconds one relay delivery may take.", above=0
    )
    relay_backoff_s: float = _setting(
        "BROKER_RELAY_BACKOFF_S",
        1.0,
        float,
        "Seconds before the first retry of a relay delivery; doubled on each failure.",
        above=0,
    )
    relay_max_backoff_s: float = _setting(
        "BROKER_RELAY_MAX_BACKOFF_S",
        600.0,
        float,
        "Longest wait between two relay retries, in seconds.",
        above=0,
    )
    relay_max_attempts: int = _setting(
        "BROKER_RELAY_MAX_ATTEMPTS",
        50,
        int,
        "Failed attempts at one relay delivery before it goes to the dead letters.",
        minimum=1,
    )
    relay_max_age_s: float = _setting(
        "BROKER_RELAY_MAX_AGE_S",
        86400.0,
        float,
        "Seconds after its first failure that a relay delivery goes to the dead letters.",
        above=0,
    )
    worker_poll_s: float = _setting(
        "BROKER_WORKER_POLL_S",
        1.0,
        float,
        "Seconds between two looks at the idle background job queues.",
        above=0,
    )
    log_level: str = _setting("LOG_LEVEL", "INFO", str.upper, "The level of the logs written.")
    metrics_port: int | None = _setting(
        "BROKER_METRICS_PORT", None, _optional_port, "A port serving GET /metrics alone."
    )
    shutdown_timeout_s: int = _setting(
        "BROKER_SHUTDOWN_TIMEOUT_S",
        15,
        int,
        "On SIGTERM, seconds requests in flight may take to finish.",
        minimum=0,
    )

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


# The table, in field order: each field's row completed with the field's name and default.
SETTINGS_TABLE: tuple[Setting, ...] = tuple(
    Setting(attribute=item.name, default=item.default, **item.metadata) for item in fields(Settings)
)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read and check the settings; raises SettingsError naming the setting that is wrong."""
    config = _config(environ, env_file)
    values: dict[str, Any] = {row.attribute: _read(config, row) for row in SETTINGS_TABLE}
    settings = Settings(**values)
    problems = check_consistency(settings)
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def _config(environ: Mapping[str, str] | None, env_file: str | Path | None) -> Config:
    """The environment first, then the `.env` file when there is one."""
    env_path = Path(env_file) if env_file is not None else None
    return Config(
        env_path if env_path is not None and env_path.is_file() else None,
        environ=dict(os.environ if environ is None else environ),
    )


def _read(config: Config, row: Setting) -> object:
    """The row's variable, else its former name (with a warning), else the row's default."""
    text = config(row.env_name, default=None)
    value = row.default if text is None else _parse(row.env_name, row.parse, text)
    former = row.former
    former_text = None if former is None else config(former.env_name, default=None)
    if former is None or former_text is None:
        return value
    former_value = _parse(former.env_name, former.parse or row.parse, former_text)
    if text is not None and former_value != value:
        raise SettingsError(
            f"{former.env_name} and {row.env_name} are both set, to different values: "
            f"{former.env_name} is {row.env_name}'s former name; keep {row.env_name} only"
        )
    logger.warning(
        "%s is deprecated: rename it %s (the old name is read until it is removed)",
        former.env_name,
        row.env_name,
    )
    return former_value if text is None else value


def _parse(env_name: str, parse: Callable[[str], object], text: str) -> object:
    try:
        return parse(text)
    except (TypeError, ValueError):
        # Not the parser's message: it would quote the value, and the value may be a secret.
        raise SettingsError(f"{env_name} has a value of the wrong type") from None


def check_consistency(settings: Settings) -> list[str]:
    """Problems that make any run impossible, whatever the mode."""
    problems = _bound_problems(settings)
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
    if settings.token_ttl_s > settings.token_max_ttl_s:
        problems.append("BROKER_TOKEN_TTL_S must not exceed BROKER_TOKEN_MAX_TTL_S")
    problems.extend(_check_operations(settings))
    problems.extend(_identity_problems(settings))
    problems.extend(_callback_problems(settings))
    return problems


def _bound_problems(settings: Settings) -> list[str]:
    """Each setting outside the bounds its row of the table gives."""
    return [
        f"{row.env_name} must be {row.bounds()}"
        for row in SETTINGS_TABLE
        if row.bounds() is not None and not row.admits(getattr(settings, row.attribute))
    ]


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
    # A blocked XREAD must answer before the Redis socket timeout gives up on it.
    if settings.events_block_ms >= settings.redis_socket_timeout_s * 1000:
        problems.append("BROKER_EVENTS_BLOCK_S must be below REDIS_SOCKET_TIMEOUT_S")
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
        problems.append("BROKER_LEASE_TTL_S must cover a whole live session (10800 s or more)")
    return problems


def _check_operations(settings: Settings) -> list[str]:
    """Redis topology, logging and process settings that no run can work with."""
    problems = []
    scheme = urlsplit(settings.redis_url or "").scheme
    if settings.redis_url and scheme not in REDIS_SCHEMES:
        problems.append(f"REDIS_URL must start with one of {', '.join(REDIS_SCHEMES)}")
    if settings.redis_cluster and scheme not in ("redis", "rediss"):
        problems.append("REDIS_CLUSTER needs a redis:// or rediss:// REDIS_URL (a seed node)")
    if settings.log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if settings.metrics_port is not None and not 1 <= settings.metrics_port <= 65535:
        problems.append("BROKER_METRICS_PORT must be a TCP port")
    return problems
