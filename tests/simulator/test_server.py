"""The simulator over HTTP, through the real driver: auth, routes, controls and injected faults."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests

from portal.provisioning import (
    AuthenticationError,
    InvalidResponse,
    MachineState,
    NotFound,
    PermanentError,
    TransientError,
    supports_notice,
)
from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.control import ControlError
from portal.simulator.process import SimulatorProcess
from tests.provisioning.contract import find_capacity, wait_for_state

MakeDriver = Callable[..., SimulatorBackend]

SMALL_FLEET = {
    "instance_types": [
        {"name": "gpu_1x_h100", "gpu_model": "H100 80GB", "gpu_count": 1},
        {"name": "gpu_8x_h100", "gpu_model": "H100 80GB", "gpu_count": 8},
    ],
    "nodes": [{"region": "lab-1", "gpu_model": "H100 80GB", "gpus": 8}],
}


def launch(
    driver: SimulatorBackend,
    request_id: str = "req-1",
    *,
    preemptible: bool = False,
    instance_type: str = "gpu_1x_h100",
    region: str = "us-east-1",
) -> str:
    return driver.create(
        request_id=request_id,
        instance_type=instance_type,
        region=region,
        image="ubuntu-22.04",
        ssh_keys=["ssh-ed25519 AAAAC3Nza test@host"],
        name="box",
        preemptible=preemptible,
    )


def api_calls(simulator: SimulatorProcess) -> int:
    return simulator.control.state()["stats"]["api_calls"]


# Auth and routes


def test_healthz_needs_no_token(simulator: SimulatorProcess) -> None:
    response = requests.get(f"{simulator.url}/healthz", timeout=2)

    assert response.json() == {"ok": True}


@pytest.mark.parametrize("path", ["/v1/machines", "/control/state", "/v1/nowhere"])
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA=="])
def test_everything_else_needs_the_token(
    simulator: SimulatorProcess, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}

    response = requests.get(simulator.url + path, headers=headers, timeout=2)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_wrong_token_is_a_permanent_error_and_not_retried(
    simulator: SimulatorProcess, make_driver: MakeDriver
) -> None:
    driver = make_driver(token="not-the-token")

    with pytest.raises(AuthenticationError, match="PROVISIONING_TOKEN"):
        driver.list()
    assert api_calls(simulator) == 0


def test_unknown_route_and_wrong_method(simulator: SimulatorProcess) -> None:
    session = simulator.control.session

    assert session.get(f"{simulator.url}/v1/nowhere", timeout=2).status_code == 404
    assert session.put(f"{simulator.url}/v1/machines", timeout=2).status_code == 405


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    simulator: SimulatorProcess, body: bytes
) -> None:
    response = simulator.control.session.post(f"{simulator.url}/v1/machines", data=body, timeout=2)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_create_with_missing_fields_is_refused(simulator: SimulatorProcess) -> None:
    response = simulator.control.session.post(
        f"{simulator.url}/v1/machines", json={"request_id": "r"}, timeout=2
    )

    assert response.status_code == 400
    assert "instance_type" in response.json()["error"]["message"]


def test_unknown_instance_type_is_a_permanent_error(driver: SimulatorBackend) -> None:
    with pytest.raises(PermanentError, match="unknown instance type"):
        launch(driver, instance_type="gpu_1x_tpu")


def test_catalog_is_served(simulator: SimulatorProcess) -> None:
    catalog = simulator.control.session.get(f"{simulator.url}/v1/catalog", timeout=2).json()

    assert "us-east-1" in catalog["regions"]
    assert {"gpu_1x_h100", "gpu_8x_a100"} <= {t["name"] for t in catalog["instance_types"]}


# Injected faults


def test_error_rate_makes_the_client_give_up_with_a_transient_error(
    simulator: SimulatorProcess, make_driver: MakeDriver
) -> None:
    simulator.control.set_faults(error_rate=1.0, error_status=500)

    with pytest.raises(TransientError, match="HTTP 500"):
        make_driver(retries=2).list()
    assert api_calls(simulator) == 3


def test_a_few_errors_are_absorbed_by_the_retries(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    simulator.control.set_faults(error_next=2)

    backend_id = launch(driver)

    assert [m.backend_id for m in driver.list()] == [backend_id]
    assert simulator.control.state()["stats"]["errors"] == 2


def test_slow_answers_time_out_as_transient_errors(
    simulator: SimulatorProcess, make_driver: MakeDriver
) -> None:
    simulator.control.set_faults(slow_rate=1.0, slow_seconds=2)
    driver = make_driver(timeout=(1.0, 0.2), retries=1)

    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer within"):
        driver.capacity()

    assert time.monotonic() - started < 1.5
    assert api_calls(simulator) == 2


def test_a_create_that_timed_out_after_taking_effect_is_not_done_twice(
    simulator: SimulatorProcess, make_driver: MakeDriver
) -> None:
    simulator.control.set_faults(slow_next=1, slow_seconds=1, slow_after=True)
    driver = make_driver(timeout=(1.0, 0.3), retries=1)

    backend_id = launch(driver, "req-slow")

    assert [m.backend_id for m in driver.list()] == [backend_id]
    assert api_calls(simulator) == 3


@pytest.mark.parametrize("kind", ["html", "truncated", "missing_fields"])
def test_garbage_answers_raise_invalid_response(
    simulator: SimulatorProcess, make_driver: MakeDriver, kind: str
) -> None:
    simulator.control.set_faults(garbage_rate=1.0, garbage_kind=kind)

    with pytest.raises(InvalidResponse):
        make_driver(retries=1).list()
    assert simulator.control.state()["stats"]["garbage"] == 2


def test_faults_spare_the_controls_and_healthz(simulator: SimulatorProcess) -> None:
    simulator.control.set_faults(error_rate=1.0, slow_rate=1.0, slow_seconds=5)

    assert requests.get(f"{simulator.url}/healthz", timeout=1).ok
    assert simulator.control.state()["faults"]["error_rate"] == 1.0


def test_bad_fault_settings_are_refused(simulator: SimulatorProcess) -> None:
    with pytest.raises(ControlError, match="400"):
        simulator.control.set_faults(error_rate=2)


def test_boot_failures(simulator: SimulatorProcess, driver: SimulatorBackend) -> None:
    simulator.control.set_faults(boot_failure_rate=1.0)

    machine = driver.get(launch(driver))

    assert machine.state == MachineState.FAILED
    assert machine.detail
    assert machine.ip is None


# Controls: lost machines, reclaims, fleet and delays


def test_a_lost_machine_is_not_found(simulator: SimulatorProcess, driver: SimulatorBackend) -> None:
    backend_id = launch(driver)

    simulator.control.lose(backend_id)

    with pytest.raises(NotFound):
        driver.get(backend_id)
    assert driver.list() == []
    driver.terminate(backend_id)


def test_failing_a_running_machine(simulator: SimulatorProcess, driver: SimulatorBackend) -> None:
    backend_id = launch(driver)

    simulator.control.fail(backend_id, "ECC errors")

    machine = driver.get(backend_id)
    assert (machine.state, machine.detail) == (MachineState.FAILED, "ECC errors")


def test_reclaim_sets_a_notice_then_interrupts_and_frees_the_gpus(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    backend_id = launch(driver, preemptible=True, instance_type="gpu_8x_h100")
    on_demand = launch(driver, "req-2", instance_type="gpu_8x_h100")
    before = find_capacity(driver, "us-east-1", "gpu_8x_h100").free_instances

    noticed = simulator.control.reclaim(region="us-east-1", notice_seconds=0.5)

    assert [m["id"] for m in noticed] == [backend_id]
    machine = driver.get(backend_id)
    assert machine.state == MachineState.RUNNING
    assert machine.reclaim_at is not None
    assert machine.reclaim_at - datetime.now(UTC) < timedelta(seconds=0.5)
    assert driver.get(on_demand).reclaim_at is None

    interrupted = wait_for_state(driver, backend_id, MachineState.INTERRUPTED, timeout=5)
    assert interrupted.ip is None
    assert find_capacity(driver, "us-east-1", "gpu_8x_h100").free_instances == before + 1
    assert driver.get(on_demand).state == MachineState.RUNNING


def test_reclaim_notice_defaults_to_the_configured_window(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    backend_id = launch(driver, preemptible=True)

    simulator.control.reclaim(machine_ids=[backend_id])

    notice = driver.get(backend_id).reclaim_at - datetime.now(UTC)
    assert timedelta(seconds=118) < notice <= timedelta(seconds=120)


def test_fleet_can_be_replaced_and_reset_brings_the_default_back(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    simulator.control.set_fleet(SMALL_FLEET)

    assert {(c.region, c.instance_type) for c in driver.capacity()} == {
        ("lab-1", "gpu_1x_h100"),
        ("lab-1", "gpu_8x_h100"),
    }
    launch(driver, region="lab-1")
    moved = {**SMALL_FLEET, "nodes": [{**SMALL_FLEET["nodes"][0], "region": "lab-2"}]}
    with pytest.raises(ControlError, match="409"):
        simulator.control.set_fleet(moved)

    simulator.control.reset()
    assert "us-east-1" in {c.region for c in driver.capacity()}
    assert driver.list() == []


def test_reset_can_start_from_a_given_fleet(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    simulator.control.reset(catalog=SMALL_FLEET)

    assert {c.region for c in driver.capacity()} == {"lab-1"}


def test_delays_make_transitions_take_time(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    simulator.control.set_delays(provision=0.3, jitter=0)

    backend_id = launch(driver)

    assert driver.get(backend_id).state == MachineState.PROVISIONING
    wait_for_state(driver, backend_id, MachineState.RUNNING, timeout=3)


def test_the_machine_reads_its_interruption_time_from_the_metadata_endpoint(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    backend_id = launch(driver, preemptible=True)
    url = f"{simulator.url}/metadata/{backend_id}/interruption"
    assert requests.get(url, timeout=2).status_code == 404  # no token needed, nothing announced

    at = datetime.now(UTC) + timedelta(seconds=30)
    driver.reclaim(backend_id, at)
    answer = requests.get(url, timeout=2)
    assert answer.status_code == 200
    assert answer.json()["action"] == "terminate"
    assert datetime.fromisoformat(answer.json()["time"]) == driver.get(backend_id).reclaim_at
    assert simulator.control.interruption(backend_id) == answer.json()
    assert (
        requests.get(f"{simulator.url}/metadata/m-nope/interruption", timeout=2).status_code == 404
    )


def test_a_notice_the_portal_may_withdraw_is_on_the_metadata_and_ends_nothing(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    """A price reclaim's notice: on the machine's metadata at once, off again when the
    customer raises the max price; only `reclaim` ends the machine."""
    assert supports_notice(driver)
    backend_id = launch(driver, preemptible=True)
    wait_for_state(driver, backend_id, MachineState.RUNNING, timeout=5)
    url = f"{simulator.url}/metadata/{backend_id}/interruption"

    at = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    driver.notice(backend_id, at)
    answer = requests.get(url, timeout=2)
    assert answer.status_code == 200
    assert answer.json() == {"action": "terminate", "time": at.isoformat()}
    assert driver.get(backend_id).reclaim_at is None  # nothing scheduled

    driver.notice(backend_id, None)  # withdrawn
    assert requests.get(url, timeout=2).status_code == 404
    driver.notice(backend_id, None)  # again: no change
    assert requests.get(url, timeout=2).status_code == 404

    driver.notice(backend_id, at)
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.3)
    assert driver.get(backend_id).state == MachineState.RUNNING  # the time passed: still runs

    ended_at = datetime.now(UTC) + timedelta(seconds=1)
    driver.reclaim(backend_id, ended_at)  # the end ordered: its time is what the machine reads
    assert datetime.fromisoformat(requests.get(url, timeout=2).json()["time"]) == (
        driver.get(backend_id).reclaim_at
    )
    wait_for_state(driver, backend_id, MachineState.INTERRUPTED, timeout=5)
    assert requests.get(url, timeout=2).status_code == 404
    driver.notice(backend_id, at)  # a machine that ended: a no-op
    assert requests.get(url, timeout=2).status_code == 404


def test_a_notice_refuses_bad_input(simulator: SimulatorProcess, driver: SimulatorBackend) -> None:
    on_demand = launch(driver)
    with pytest.raises(PermanentError, match="not preemptible"):
        driver.notice(on_demand, datetime.now(UTC))
    spot = launch(driver, "req-2", preemptible=True)
    headers = {"Authorization": f"Bearer {simulator.token}"}
    for body in ({}, {"at": "tomorrow"}, {"at": "2026-12-05T10:00:00"}, {"at": 5}):
        answer = requests.post(
            f"{simulator.url}/v1/machines/{spot}/notice", json=body, headers=headers, timeout=2
        )
        assert answer.status_code == 400, body
    with pytest.raises(NotFound):
        driver.notice("m-nope", None)


def test_the_demand_control_endpoint_sets_the_curve_and_refuses_bad_input(
    simulator: SimulatorProcess, driver: SimulatorBackend
) -> None:
    simulator.control.set_demand(
        seed=3, curves=[{"region": "us-east-1", "gpu_model": "H100 80GB", "gpus": 5}]
    )
    view = simulator.control.demand()
    assert view["now"][0]["internal_gpus"] == 5
    assert find_capacity(driver, "us-east-1", "gpu_1x_h100").internal_gpus == 5
    with pytest.raises(ControlError, match="peak must be between 0 and 1"):
        simulator.control.set_demand(
            curves=[{"region": "us-east-1", "gpu_model": "H100 80GB", "peak": 3}]
        )
    assert find_capacity(driver, "us-east-1", "gpu_1x_h100").internal_gpus == 5
