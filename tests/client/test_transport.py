"""Retries, backoff and error mapping, against ``httpx.MockTransport``."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sync_client.errors import ServerError, TransportError
from sync_client.transport import RetryPolicy, Transport

PROBLEM = {"type": "urn:fieldsync:error:authentication_required", "status": 401,
           "code": "authentication_required", "detail": "this enrolment code has expired",
           "reason": "code_expired"}


def scripted(*steps: int | type[Exception]) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering each request with the next step: a status, or an exception."""
    calls: list[str] = []
    queue = list(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        step = queue.pop(0)
        if isinstance(step, int):
            if step >= 400:
                return httpx.Response(step, json={**PROBLEM, "status": step})
            return httpx.Response(step, json={"ok": True})
        raise step("scripted failure", request=request)

    return httpx.MockTransport(handler), calls


def transport(mock: httpx.MockTransport, sleeps: list[float], attempts: int = 4) -> Transport:
    return Transport("http://server", retry=RetryPolicy(attempts=attempts, backoff=0.5,
                                                        jitter=False),
                     transport=mock, sleep=sleeps.append)


def test_5xx_and_dropped_connections_are_retried_with_exponential_backoff() -> None:
    mock, calls = scripted(503, httpx.ReadError, 500, 200)
    sleeps: list[float] = []
    response = transport(mock, sleeps).request("GET", "/api/v1/sync/pull")
    assert response.json() == {"ok": True}
    assert len(calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_giving_up_after_the_last_attempt() -> None:
    mock, calls = scripted(*[httpx.ConnectError] * 3)
    sleeps: list[float] = []
    with pytest.raises(TransportError, match="cannot reach http://server.*after 3 attempts"):
        transport(mock, sleeps, attempts=3).request("POST", "/api/v1/sync/push", json={})
    assert len(calls) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(("failure", "tries"), [(httpx.ReadError, 1), (httpx.ConnectError, 2)])
def test_non_idempotent_requests_are_retried_only_if_never_sent(
        failure: type[Exception], tries: int) -> None:
    mock, calls = scripted(failure, 201)
    send: Callable[[], httpx.Response] = lambda: transport(mock, []).request(  # noqa: E731
        "POST", "/api/v1/devices/enroll", json={}, idempotent=False)
    if tries == 1:
        with pytest.raises(TransportError):
            send()
    else:
        assert send().status_code == 201
    assert len(calls) == tries


def test_problem_documents_become_server_errors_with_their_code() -> None:
    mock, calls = scripted(401)
    with pytest.raises(ServerError) as caught:
        transport(mock, []).request("GET", "/api/v1/sync/keys")
    assert len(calls) == 1  # 4xx are not retried
    error = caught.value
    assert (error.status, error.code, error.reason) == (401, "authentication_required",
                                                         "code_expired")
    assert str(error) == ("server refused the request: authentication_required (code_expired): "
                          "this enrolment code has expired")


def test_a_non_problem_error_body_still_gives_a_one_line_error() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(404, text="<html>\nNo\n</html>"))
    with pytest.raises(ServerError, match=r"^server refused the request: http_404: <html> No"):
        transport(mock, []).request("GET", "/nowhere")


def test_the_device_token_is_sent_as_a_bearer_token() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={})

    client = Transport("http://server", token="tok", transport=httpx.MockTransport(handler))
    client.request("GET", "/api/v1/sync/keys")
    assert seen == ["Bearer tok"]
