"""The simulator driver's transport rules, against canned answers (no server needed)."""

import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from portal.provisioning import (
    AuthenticationError,
    CapacityError,
    InvalidResponse,
    InvalidState,
    MachineState,
    NotFound,
    PermanentError,
    TransientError,
)
from portal.provisioning.drivers.simulator import SimulatorBackend

MACHINE = {
    "id": "m-1",
    "request_id": "req-1",
    "name": "box",
    "region": "us-east-1",
    "instance_type": "gpu_1x_h100",
    "state": "running",
    "ip": "203.0.113.7",
    "preemptible": True,
    "reclaim_at": "2030-01-01T12:02:00+00:00",
    "detail": "",
    "created_at": "2030-01-01T12:00:00+00:00",
}
CAPACITY = {
    "region": "us-east-1",
    "instance_type": "gpu_1x_h100",
    "gpu_model": "H100 80GB",
    "free_gpus": 7,
    "total_gpus": 8,
    "free_instances": 7,
}


def answer(status: int, body: Any = None, *, text: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (text if text is not None else json.dumps(body)).encode()
    return response


class FakeSession(requests.Session):
    def __init__(self, *answers: requests.Response | Exception) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append((method, url, kwargs))
        result = self.answers.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def make_driver(
    *answers: requests.Response | Exception, retries: int = 2
) -> tuple[SimulatorBackend, FakeSession, list[float]]:
    session = FakeSession(*answers)
    sleeps: list[float] = []
    driver = SimulatorBackend(
        "http://sim.test/",
        "s3cret",
        timeout=(1.0, 3.0),
        retries=retries,
        backoff=0.5,
        session=session,
        sleep=sleeps.append,
    )
    return driver, session, sleeps


def test_get_parses_the_machine_and_sends_token_and_timeout() -> None:
    driver, session, _ = make_driver(answer(200, MACHINE))

    machine = driver.get("m-1")

    assert machine.backend_id == "m-1"
    assert machine.state is MachineState.RUNNING
    assert machine.preemptible is True
    assert machine.reclaim_at == datetime(2030, 1, 1, 12, 2, tzinfo=UTC)
    assert machine.created_at == datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert machine.ssh_sudo is True  # the image's user, with sudo
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("GET", "http://sim.test/v1/machines/m-1")
    assert kwargs["timeout"] == (1.0, 3.0)
    assert session.headers["Authorization"] == "Bearer s3cret"


def test_create_sends_every_field_and_returns_the_id() -> None:
    driver, session, _ = make_driver(answer(201, MACHINE))

    backend_id = driver.create(
        request_id="req-1",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="ubuntu",
        ssh_keys=["ssh-ed25519 AAAA x"],
        name="box",
        preemptible=True,
    )

    assert backend_id == "m-1"
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("POST", "http://sim.test/v1/machines")
    assert kwargs["json"] == {
        "request_id": "req-1",
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "image": "ubuntu",
        "ssh_keys": ["ssh-ed25519 AAAA x"],
        "name": "box",
        "preemptible": True,
    }


def test_ids_are_quoted_into_the_path() -> None:
    driver, session, _ = make_driver(answer(200, MACHINE))

    driver.stop("a/b?c")

    assert session.calls[0][1] == "http://sim.test/v1/machines/a%2Fb%3Fc/stop"


def test_retries_transient_errors_with_exponential_backoff() -> None:
    driver, session, sleeps = make_driver(
        answer(503, {"error": {"code": "x", "message": "busy"}}),
        requests.ConnectionError("refused"),
        answer(200, MACHINE),
    )

    assert driver.get("m-1").backend_id == "m-1"
    assert len(session.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_the_retries() -> None:
    driver, session, sleeps = make_driver(*[answer(500, text="oops")] * 3)

    with pytest.raises(TransientError, match="HTTP 500"):
        driver.list()
    assert len(session.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_zero_retries_means_one_attempt() -> None:
    driver, session, sleeps = make_driver(requests.ReadTimeout("slow"), retries=0)

    with pytest.raises(TransientError, match="no answer within"):
        driver.get("m-1")
    assert len(session.calls) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "bad_request", PermanentError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", AuthenticationError),
        (404, "not_found", NotFound),
        (409, "capacity", CapacityError),
        (409, "invalid_state", InvalidState),
        (409, "conflict", PermanentError),
    ],
)
def test_client_errors_are_permanent_and_not_retried(
    status: int, code: str, error: type[Exception]
) -> None:
    driver, session, _ = make_driver(answer(status, {"error": {"code": code, "message": "no"}}))

    with pytest.raises(error) as raised:
        driver.start("m-1")
    assert type(raised.value) is error
    assert len(session.calls) == 1


@pytest.mark.parametrize("status", [408, 429, 502, 504])
def test_these_statuses_are_transient(status: int) -> None:
    driver, _, _ = make_driver(answer(status, text="later"), retries=0)

    with pytest.raises(TransientError):
        driver.capacity()


def test_terminate_of_an_unknown_machine_is_fine() -> None:
    driver, _, _ = make_driver(answer(404, {"error": {"code": "not_found", "message": "?"}}))

    driver.terminate("m-gone")


def test_garbage_is_retried_then_raised_as_invalid_response() -> None:
    driver, session, _ = make_driver(*[answer(200, text="<html>proxy error</html>")] * 3)

    with pytest.raises(InvalidResponse):
        driver.get("m-1")
    assert len(session.calls) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"id": None},
        {"state": "on-fire"},
        {"state": None},
        {"preemptible": "yes"},
        {"ip": 7},
        {"created_at": "yesterday"},
        {"created_at": "2030-01-01T12:00:00"},
        {"reclaim_at": 5},
    ],
    ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()),
)
def test_malformed_machine_is_an_invalid_response(change: dict[str, Any]) -> None:
    driver, _, _ = make_driver(answer(200, {**MACHINE, **change}), retries=0)

    with pytest.raises(InvalidResponse):
        driver.get("m-1")


def test_missing_machine_field_is_retried_then_an_invalid_response() -> None:
    body = {k: v for k, v in MACHINE.items() if k != "region"}
    driver, session, _ = make_driver(*[answer(200, body)] * 3)

    with pytest.raises(InvalidResponse, match="region"):
        driver.get("m-1")
    assert len(session.calls) == 3


@pytest.mark.parametrize(
    "body",
    [{"capacity": [{**CAPACITY, "free_gpus": True}]}, {"capacity": "all"}, [CAPACITY], {}],
)
def test_malformed_capacity_is_an_invalid_response(body: Any) -> None:
    driver, _, _ = make_driver(answer(200, body), retries=0)

    with pytest.raises(InvalidResponse):
        driver.capacity()


def test_capacity_parses() -> None:
    driver, _, _ = make_driver(answer(200, {"capacity": [CAPACITY]}))

    [entry] = driver.capacity()

    assert (entry.gpu_model, entry.free_gpus, entry.free_instances) == ("H100 80GB", 7, 7)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = SimulatorBackend(f"http://127.0.0.1:{port}", "t", timeout=1, retries=1, backoff=0)

    with pytest.raises(TransientError):
        driver.list()


def test_a_session_reads_the_proxy_environment_once_not_per_call(monkeypatch) -> None:
    from portal.provisioning import transport

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com")
    proxied = transport.shared_session("https://api.example.com", {"X-Test": "proxied"})
    direct = transport.shared_session("https://internal.example.com", {"X-Test": "direct"})

    assert proxied.trust_env is False  # requests no longer reads the environment per call
    assert proxied.proxies["https"] == "http://proxy.example.com:3128"
    assert "https" not in direct.proxies
