"""HTTP to the server: httpx with bounded retries and exponential backoff.

Every sync request is safe to repeat (the server is idempotent by submission id, and pulls are
reads), so a dropped connection, a timeout or a 5xx answer is retried after ``backoff``,
``2 * backoff``, ``4 * backoff``... seconds (capped at ``max_delay``, with jitter) until
``attempts`` tries are used up. Requests that are not idempotent (enrolment redeems a one-time
code) are retried only when the request provably never reached the server (connection refused,
connect timeout) or the server answered 503.

Any other 4xx/5xx answer raises :class:`~sync_client.errors.ServerError` with the problem
document's stable ``code``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sync_client.errors import ProtocolError, ServerError, TransportError

API = "/api/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "fieldsync-client/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one request."""

    attempts: int = 5
    backoff: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_delay < 0:
            raise ValueError("attempts must be >= 1 and delays >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2) if self.jitter else base


class Transport:
    """One server, one device token (once enrolled), one retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._on_retry = on_retry
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                  headers={"User-Agent": USER_AGENT}, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send with retries; returns 2xx and 304 answers, raises for anything else."""
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempts = self.retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, json=json, params=params,
                                              headers=headers)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt == attempts or not (idempotent or unsent):
                    raise TransportError(
                        f"cannot reach {self.base_url}: {_describe(exc)}"
                        + (f" (after {attempts} attempts)" if attempts > 1 else "")
                    ) from None
                self._wait(attempt, _describe(exc))
                continue
            if response.status_code < 400:  # 2xx, and 304 Not Modified
                return response
            retryable = response.status_code in RETRY_STATUSES and (
                idempotent or response.status_code == 503
            )
            if retryable and attempt < attempts:
                self._wait(attempt, f"HTTP {response.status_code}")
                continue
            raise server_error(response)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, why: str) -> None:
        delay = self.retry.delay(attempt)
        if self._on_retry is not None:
            self._on_retry(f"{why}; retrying in {delay:.1f} s "
                           f"(attempt {attempt + 1} of {self.retry.attempts})")
        self._sleep(delay)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a success answer; :class:`ProtocolError` if it is anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProtocolError(f"{response.request.method} {response.request.url.path}: "
                            "the answer is not a JSON object")
    return body


def server_error(response: httpx.Response) -> ServerError:
    """The :class:`ServerError` for a problem+json (or any other) error answer."""
    problem: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        pass
    code = problem.get("code")
    detail = problem.get("detail")
    if not isinstance(code, str):
        code = f"http_{response.status_code}"
    if not isinstance(detail, str):
        detail = " ".join(response.text.split())[:200] or response.reason_phrase
    return ServerError(response.status_code, code, detail, problem)


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
