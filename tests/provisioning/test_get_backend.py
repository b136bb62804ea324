from types import SimpleNamespace
from typing import Any

import pytest

from portal.provisioning import get_backend, load_driver
from portal.provisioning.drivers.simulator import SimulatorBackend


class FakeDriver:
    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Any) -> "FakeDriver":
        return cls(settings)


FAKE_PATH = f"{__name__}.FakeDriver"


def test_defaults_give_the_simulator_driver() -> None:
    backend = get_backend(SimpleNamespace())

    assert isinstance(backend, SimulatorBackend)
    assert backend.base_url == "http://127.0.0.1:8070"
    assert backend.timeout == 10.0
    assert backend.retries == 2


def test_simulator_settings_are_used() -> None:
    settings = SimpleNamespace(
        PROVISIONING_BACKEND="simulator",
        SIMULATOR_URL="http://sim:9000/",
        PROVISIONING_TOKEN="tok",
        PROVISIONING_TIMEOUT=(2, 7),
        PROVISIONING_RETRIES=0,
        PROVISIONING_BACKOFF=0,
    )

    backend = get_backend(settings)

    assert isinstance(backend, SimulatorBackend)
    assert backend.base_url == "http://sim:9000"
    assert backend.timeout == (2, 7)
    assert backend.retries == 0
    assert backend.backoff == 0
    assert backend.session.headers["Authorization"] == "Bearer tok"


def test_extra_drivers_can_be_registered_by_name() -> None:
    settings = SimpleNamespace(
        PROVISIONING_BACKEND="fake", PROVISIONING_DRIVERS={"fake": FAKE_PATH}
    )

    backend = get_backend(settings)

    assert isinstance(backend, FakeDriver)
    assert backend.settings is settings


def test_a_dotted_path_works_as_backend_name() -> None:
    assert load_driver(FAKE_PATH) is FakeDriver


@pytest.mark.parametrize("name", ["slurm-someday", "portal.provisioning.drivers.nope.Driver"])
def test_unknown_backend_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="provisioning backend"):
        load_driver(name)


def test_reads_django_settings_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("django.conf.settings", SimpleNamespace(SIMULATOR_URL="http://lazy:1"))

    backend = get_backend()

    assert isinstance(backend, SimulatorBackend)
    assert backend.base_url == "http://lazy:1"


def test_drivers_built_with_the_same_settings_share_one_session() -> None:
    """Every task builds its driver afresh: the session (and its open connections) is reused."""
    settings = SimpleNamespace(SIMULATOR_URL="http://sim:9001", PROVISIONING_TOKEN="tok")

    first, second = get_backend(settings), get_backend(settings)

    assert first.session is second.session
    other = get_backend(SimpleNamespace(SIMULATOR_URL="http://sim:9001", PROVISIONING_TOKEN="new"))
    assert other.session is not first.session
    assert other.session.headers["Authorization"] == "Bearer new"
    assert first.session.headers["Authorization"] == "Bearer tok"
