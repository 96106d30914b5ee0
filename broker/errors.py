"""Every exception the broker raises on purpose, in one tree; web/problems.py renders them."""

from __future__ import annotations

from dataclasses import dataclass

# Every `reason` a problem answer can carry, with what it means (docs/api.md and the OpenAPI
# document list these; a reason not listed here is a bug that tests catch at the raise).
REASONS: dict[str, str] = {
    "internal_error": "the broker failed unexpectedly",
    "bad_request": "the request cannot be read (malformed JSON, a bad query parameter)",
    "unauthorized": "no valid credential",
    "token_revoked": "the token was revoked (DELETE /v1/tokens/{id})",
    "subject_revoked": "the credential was issued before its subject's revocation",
    "gladia_key_sent": "a Gladia API key was sent where the broker expects a user token",
    "forbidden": "the credential may not do this",
    "not_found": "no such resource, or not the caller's (the two look the same)",
    "method_not_allowed": "the path exists, not with this method",
    "conflict": "the resource is not in a state that allows this",
    "payload_too_large": "the body is larger than the broker accepts",
    "unsupported_media_type": "the body is not JSON",
    "invalid_fields": "fields that are unknown, forbidden or invalid, each named in `errors`",
    "rate_limited": "a limit is reached; see Retry-After",
    "live_per_subject": "the subject holds BROKER_MAX_LIVE_PER_SUBJECT live sessions",
    "creates_per_minute": "the subject made BROKER_CREATES_PER_MINUTE creates in the last minute",
    "account_live": "the account holds BROKER_ACCOUNT_MAX_LIVE live sessions",
    "reads_per_minute": "the subject spent BROKER_READS_PER_MINUTE reads in the last minute",
    "failed_attempts": "too many failed attempts from this address",
    "budget_seconds_per_day": "the subject's audio seconds today reached "
    "BROKER_BUDGET_SECONDS_PER_DAY; see Retry-After (UTC midnight)",
    "binding_preset": "the token may create sessions only from the presets it names",
    "binding_channels": "the token may not create sessions with this many channels",
    "binding_sessions": "the token has created all the sessions it may (single use is one)",
    "service_unavailable": "the broker cannot answer now; see Retry-After",
    "store_unavailable": "Redis is unavailable; see Retry-After",
    "identity_unavailable": "the identity provider's keys cannot be fetched",
    "upstream_error": "Gladia gave no usable answer",
    "upstream_rejected": "Gladia refused the session configuration, each field named in `errors`",
    "upstream_not_found": "Gladia does not know the session (any more)",
    "upstream_conflict": "Gladia does not allow this yet (the session is still live)",
    "account_capacity": "Gladia's capacity for the account is used up; see Retry-After",
    "upstream_timeout": "Gladia did not answer in time",
    "idempotency_key_spent": "an earlier attempt with this Idempotency-Key created a session "
    "whose answer was lost",
}


@dataclass(frozen=True)
class FieldProblem:
    """One named field of a request and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class BrokerError(Exception):
    """Base of every error the broker answers deliberately.

    `problem` names the problem type (its `type` URI is `/problems/<problem>`, one per class,
    listed in docs/api.md); `reason` is the machine-readable cause clients switch on, the
    class's own unless the raise names a finer one (`live_per_subject`, `binding_channels`, …).
    """

    status_code = 500
    title = "Internal error"
    problem = "internal-error"
    default_reason = "internal_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        reason: str | None = None,
        retry_after_s: int | None = None,
        problems: tuple[FieldProblem, ...] = (),
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.reason = reason or self.default_reason
        assert self.reason in REASONS, f"unregistered problem reason {self.reason!r}"
        self.retry_after_s = retry_after_s
        self.problems = problems

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}


class BadRequest(BrokerError):
    status_code = 400
    title = "Bad request"
    problem = "bad-request"
    default_reason = "bad_request"


class Unauthorized(BrokerError):
    status_code = 401
    title = "Unauthorized"
    problem = "unauthorized"
    default_reason = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(BrokerError):
    status_code = 403
    title = "Forbidden"
    problem = "forbidden"
    default_reason = "forbidden"


class NotFound(BrokerError):
    status_code = 404
    title = "Not found"
    problem = "not-found"
    default_reason = "not_found"


class MethodNotAllowed(BrokerError):
    status_code = 405
    title = "Method not allowed"
    problem = "method-not-allowed"
    default_reason = "method_not_allowed"


class Conflict(BrokerError):
    status_code = 409
    title = "Conflict"
    problem = "conflict"
    default_reason = "conflict"


class EarlierAttemptCreated(Conflict):
    """Reconciliation found the session an earlier attempt created; its URL is lost for good."""

    default_reason = "idempotency_key_spent"


class PayloadTooLarge(BrokerError):
    status_code = 413
    title = "Payload too large"
    problem = "payload-too-large"
    default_reason = "payload_too_large"


class UnsupportedMediaType(BrokerError):
    status_code = 415
    title = "Unsupported media type"
    problem = "unsupported-media-type"
    default_reason = "unsupported_media_type"


class InvalidFields(BrokerError):
    """The request body parsed but names fields that are unknown, forbidden or invalid."""

    status_code = 422
    title = "Invalid request fields"
    problem = "invalid-fields"
    default_reason = "invalid_fields"


class WebhookRejected(BrokerError):
    """A delivery that is not provably from the sender: 400 when malformed, 401 otherwise."""


class MalformedWebhook(WebhookRejected, BadRequest):
    pass


class UnverifiedWebhook(WebhookRejected, Unauthorized):
    def headers(self) -> dict[str, str]:
        return {}


class TooManyRequests(BrokerError):
    """A limit refused the request; `reason` names which one, for logs and counters."""

    status_code = 429
    title = "Too many requests"
    problem = "rate-limited"
    default_reason = "rate_limited"

    def __init__(self, detail: str, *, reason: str, retry_after_s: int) -> None:
        super().__init__(detail, reason=reason, retry_after_s=max(1, retry_after_s))


class ServiceUnavailable(BrokerError):
    status_code = 503
    title = "Service unavailable"
    problem = "service-unavailable"
    default_reason = "service_unavailable"


class StoreUnavailable(ServiceUnavailable):
    title = "Session store unavailable"
    problem = "store-unavailable"
    default_reason = "store_unavailable"


class IdentityUnavailable(ServiceUnavailable):
    """The identity provider's keys could not be fetched, so no token can be checked."""

    title = "Identity provider unavailable"
    problem = "identity-unavailable"
    default_reason = "identity_unavailable"


class UpstreamError(BrokerError):
    """Gladia did not give a usable answer."""

    status_code = 502
    title = "Bad gateway"
    problem = "upstream-error"
    default_reason = "upstream_error"
    # True when Gladia may have acted on the request anyway (sent, then timeout, reset or 5xx).
    outcome_unknown = False

    def with_unknown_outcome(self) -> UpstreamError:
        self.outcome_unknown = True
        return self


class UpstreamRejected(UpstreamError):
    """Gladia refused the request's content (its 400 or 422)."""

    status_code = 422  # or 400: Gladia's own status is kept
    title = "Invalid session configuration"
    problem = "upstream-rejected"

    def __init__(self, status_code: int, problems: tuple[FieldProblem, ...]) -> None:
        super().__init__(
            "Gladia refused the session configuration",
            reason="upstream_rejected",
            problems=problems,
        )
        self.status_code = status_code
        self.title = "Invalid session configuration"


class UpstreamNotFound(UpstreamError):
    status_code = 404
    title = "Not found"
    problem = "not-found"
    default_reason = "upstream_not_found"


class UpstreamConflict(UpstreamError):
    status_code = 409
    title = "Conflict"
    problem = "conflict"
    default_reason = "upstream_conflict"


class UpstreamBusy(UpstreamError):
    """Gladia's account capacity is used up (its 429): our capacity, not the user's misuse."""

    status_code = 503
    title = "Transcription capacity exhausted"
    problem = "upstream-busy"
    default_reason = "account_capacity"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    title = "Gateway timeout"
    problem = "upstream-timeout"
    default_reason = "upstream_timeout"


class UpstreamAnswerTooLarge(Exception):
    """Gladia's answer is larger than any answer the broker expects (becomes an UpstreamError)."""


# Raised while the broker starts, never while it answers: they stop `serve` with a message.


class SettingsError(ValueError):
    """A setting that cannot be read, or that makes the broker unsafe to run."""


class RedisUrlError(ValueError):
    """A REDIS_URL that names no usable Redis."""
