"""Every exception the broker raises on purpose, in one tree; web/problems.py renders them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One named field of a request and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class BrokerError(Exception):
    """Base of every error the broker answers deliberately."""

    status_code = 500
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after_s: int | None = None,
        problems: tuple[FieldProblem, ...] = (),
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.problems = problems

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}


class BadRequest(BrokerError):
    status_code = 400
    title = "Bad request"


class Unauthorized(BrokerError):
    status_code = 401
    title = "Unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(BrokerError):
    status_code = 403
    title = "Forbidden"


class NotFound(BrokerError):
    status_code = 404
    title = "Not found"


class MethodNotAllowed(BrokerError):
    status_code = 405
    title = "Method not allowed"


class Conflict(BrokerError):
    status_code = 409
    title = "Conflict"


class EarlierAttemptCreated(Conflict):
    """Reconciliation found the session an earlier attempt created; its URL is lost for good."""


class PayloadTooLarge(BrokerError):
    status_code = 413
    title = "Payload too large"


class UnsupportedMediaType(BrokerError):
    status_code = 415
    title = "Unsupported media type"


class InvalidFields(BrokerError):
    """The request body parsed but names fields that are unknown, forbidden or invalid."""

    status_code = 422
    title = "Invalid request fields"


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

    def __init__(self, detail: str, *, reason: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=max(1, retry_after_s))
        self.reason = reason


class ServiceUnavailable(BrokerError):
    status_code = 503
    title = "Service unavailable"


class StoreUnavailable(ServiceUnavailable):
    title = "Session store unavailable"


class IdentityUnavailable(ServiceUnavailable):
    """The identity provider's keys could not be fetched, so no token can be checked."""

    title = "Identity provider unavailable"


class UpstreamError(BrokerError):
    """Gladia did not give a usable answer."""

    status_code = 502
    title = "Bad gateway"
    # True when Gladia may have acted on the request anyway (sent, then timeout, reset or 5xx).
    outcome_unknown = False

    def with_unknown_outcome(self) -> UpstreamError:
        self.outcome_unknown = True
        return self


class UpstreamRejected(UpstreamError):
    """Gladia refused the request's content (its 400 or 422)."""

    def __init__(self, status_code: int, problems: tuple[FieldProblem, ...]) -> None:
        super().__init__("Gladia refused the session configuration", problems=problems)
        self.status_code = status_code
        self.title = "Invalid session configuration"


class UpstreamNotFound(UpstreamError):
    status_code = 404
    title = "Not found"


class UpstreamConflict(UpstreamError):
    status_code = 409
    title = "Conflict"


class UpstreamBusy(UpstreamError):
    """Gladia's account capacity is used up (its 429): our capacity, not the user's misuse."""

    status_code = 503
    title = "Transcription capacity exhausted"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    title = "Gateway timeout"


class UpstreamAnswerTooLarge(Exception):
    """Gladia's answer is larger than any answer the broker expects (becomes an UpstreamError)."""


# Raised while the broker starts, never while it answers: they stop `serve` with a message.


class SettingsError(ValueError):
    """A setting that cannot be read, or that makes the broker unsafe to run."""


class RedisUrlError(ValueError):
    """A REDIS_URL that names no usable Redis."""
