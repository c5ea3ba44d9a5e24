"""Retries: transient failures are retried with backoff, everything else fails fast.

Every asset step carries a Dagster :class:`~dagster.RetryPolicy` (exponential
backoff with jitter). Dagster retries any exception a step raises, except a
``dg.Failure(allow_retries=False)``; so each asset's body is wrapped to sort
what it raises. Both reach the assets as they are declared, through Dagster's
public API only (``@dg.asset(retry_policy=...)`` and a plain decorator on the
body): :func:`transient_retries` is what the code location hands to
``assets.graph.lakehouse_assets``.

- transient (I/O errors, a Spark / Spark Connect connection lost mid-step): raised
  as is, and the retry policy runs the step again after 1x, 3x, 7x the delay
  (+/- the delay as jitter);
- a contract violation or a tripped circuit breaker (the assets already raise
  ``dg.Failure(allow_retries=False)`` for them), a missing landing file, a
  Spark Connect server that never answered at session start (the resource
  already waited; usually a wrong URL), a bad value, a bug: turned into ``dg.Failure(allow_retries=False)`` with the
  original exception as its cause — retrying cannot fix them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import dagster as dg

from ..assets.common import StepRetries
from ..lakehouse.spark import SparkConnectUnreachable

MAX_RETRIES = 3

# OSErrors that no retry fixes: the input or the configuration is wrong
_PERMANENT_OS_ERRORS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
)
# connection failures of Spark (py4j to the local JVM, gRPC to a Spark Connect server)
_TRANSIENT_TYPE_NAMES = {
    "Py4JNetworkError",
    "SparkConnectGrpcException",
    "RetriesExceeded",
    "_InactiveRpcError",
    "RpcError",
}


def retry_policy(delay_seconds: float) -> dg.RetryPolicy:
    return dg.RetryPolicy(
        max_retries=MAX_RETRIES,
        delay=delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def is_transient(exc: BaseException) -> bool:
    """Would running the step again plausibly succeed?"""
    if isinstance(exc, SparkConnectUnreachable):
        # the server never answered at session start (after the resource's own wait):
        # most often a wrong FOODOPS_SPARK_REMOTE, so fail fast with the URL to fix
        return False
    if isinstance(exc, OSError):
        return not isinstance(exc, _PERMANENT_OS_ERRORS)
    return any(t.__name__ in _TRANSIENT_TYPE_NAMES for t in type(exc).__mro__)


def _sorted_failure(exc: Exception) -> Exception:
    if isinstance(exc, (dg.Failure, dg.RetryRequested)) or is_transient(exc):
        return exc
    return dg.Failure(
        description=(
            f"{type(exc).__name__}: {exc} — not a transient failure, so it is not retried "
            "(fix the input, the configuration or the code, then re-run the partition)"
        ),
        allow_retries=False,
    )


def fail_fast_unless_transient(fn: Callable) -> Callable:
    """Wrap an asset's compute function (plain or generator) so that only transient
    errors reach the retry policy."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def _gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                sorted_exc = _sorted_failure(exc)
                if sorted_exc is exc:
                    raise
                raise sorted_exc from exc

        return _gen

    @functools.wraps(fn)
    def _plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            sorted_exc = _sorted_failure(exc)
            if sorted_exc is exc:
                raise
            raise sorted_exc from exc

    return _plain


def transient_retries(delay_seconds: float) -> StepRetries:
    """The code location's retries: ``retry_policy`` on every asset step, and the body
    wrapped so that only transient errors reach it."""
    return StepRetries(policy=retry_policy(delay_seconds), wrap=fail_fast_unless_transient)
