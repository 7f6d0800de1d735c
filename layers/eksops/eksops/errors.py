"""One exception class per failure, so handlers and tests never classify errors by message text."""

from __future__ import annotations


class EksopsError(Exception):
    """Base of every error eksops raises on purpose."""


class ConfigError(EksopsError):
    """Invalid configuration, detected at start-up. The message names the variable and what is allowed."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class UndeclaredService(EksopsError, ValueError):
    """A client was asked for an AWS service missing from eksops.aws.clients.SERVICES: a programming error. The
    built layer ships botocore's data for the declared services only, so the client would fail in Lambda."""

    def __init__(self, service: str, declared: frozenset[str]) -> None:
        self.service = service
        super().__init__(
            f"no client for AWS service {service!r}: add it to eksops.aws.clients.SERVICES (the layer ships "
            f"botocore data only for {', '.join(sorted(declared))})"
        )


class UndeclaredOperation(EksopsError, AttributeError):
    """eksops' code called an AWS operation missing from eksops.aws.clients.OPERATIONS: a programming error. The
    built layer ships each service's model with the declared operations only: in Lambda the client would have no
    such method (an AttributeError, which this is too)."""

    def __init__(self, service: str, operation: str, caller: str) -> None:
        self.service = service
        self.operation = operation
        super().__init__(
            f"{caller} called {service} {operation}, which is not in eksops.aws.clients.OPERATIONS: declare it there "
            f"(the layer's {service} client has only the declared operations)"
        )


class InvalidEvent(EksopsError):
    """A malformed event, or one this function does not handle. Nothing was changed."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{reason} (field: {field})" if field else reason)


class UnsupportedEvent(InvalidEvent):
    """A well-formed event that belongs to another service or API call than this function handles."""


class TemporaryError(EksopsError):
    """Retryable: raise it so Lambda retries and the failure destination catches the last attempt."""


class PermanentError(EksopsError):
    """Not worth retrying as is (access denied, resource rules): report it, do not retry in a loop."""


class PartialFailure(TemporaryError):
    """Some items of a batch or sweep failed after the rest were done; the report lists them.

    Raised at the end so the invocation counts as failed (error alarm, failure destination) and the
    retry only redoes what is still non-compliant.
    """

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__(message)
