"""Quota mirroring from the portal's side: a backend that keeps limits of its own gets the
organization's totals after every change; any other backend gets nothing.

The real backend with the capability is Slurm (tests/provisioning/test_slurm_portal.py runs this
path end to end); here a driver that only records what it is told stands in for it, registered
through PROVISIONING_DRIVERS as a deployment would add one.
"""

from collections.abc import Mapping
from typing import Any

import pytest
from django.core.management import call_command

from portal.provisioning import driver_supports_quota_mirroring
from portal.quotas import sync, tasks
from portal.quotas.models import Kind

pytestmark = pytest.mark.django_db


class LimitsKeepingDriver:
    """A backend that only keeps account limits (the `QuotaMirroringBackend` capability)."""

    accounts: dict[str, dict[str, int | None]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> "LimitsKeepingDriver":
        return cls()

    def set_account_limits(self, account: str, limits: Mapping[str, int | None]) -> None:
        self.accounts[account] = dict(limits)

    def account_limits(self, account: str) -> dict[str, int]:
        limits = self.accounts.get(account, {})
        return {model: limit for model, limit in limits.items() if limit is not None}


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """The mirror tasks enqueued (on commit), in order."""
    calls: list[tuple] = []
    monkeypatch.setattr(tasks.quota_mirror, "delay", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def keeping_backend(settings) -> type[LimitsKeepingDriver]:
    LimitsKeepingDriver.accounts = {}
    settings.PROVISIONING_BACKEND = "keeping"
    settings.PROVISIONING_DRIVERS = {"keeping": f"{__name__}.LimitsKeepingDriver"}
    return LimitsKeepingDriver


def test_the_stand_in_driver_has_the_capability() -> None:
    assert driver_supports_quota_mirroring(LimitsKeepingDriver)


def test_with_the_simulator_a_limit_change_mirrors_nothing(
    settings, set_limit, enqueued, django_capture_on_commit_callbacks
) -> None:
    settings.PROVISIONING_BACKEND = "simulator"

    with django_capture_on_commit_callbacks(execute=True):
        set_limit(8)

    assert enqueued == []
    assert not sync.backend_mirrors_quotas()


def test_every_change_sends_the_organizations_totals_per_model(
    team, gpu_catalog, set_limit, keeping_backend, enqueued, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        set_limit(8)
        set_limit(4, kind=Kind.PREEMPTIBLE)
        set_limit(16, region=gpu_catalog.eu_west)
        set_limit(2, gpu_model=gpu_catalog.l40s, region=gpu_catalog.eu_west)

    assert [args[0] for args in enqueued] == [team.organization.pk] * 4
    assert {args[1] for args in enqueued} == {"h100", "l40s"}

    # The task, whenever it runs, sends every model's total (every region, both kinds).
    assert tasks.quota_mirror.apply(args=enqueued[0]).get() is True
    assert keeping_backend.accounts == {"acme": {"h100": 28, "l40s": 2}}


def test_the_command_mirrors_every_organization_with_quotas(
    team, outsider, gpu_catalog, set_limit, keeping_backend, capsys
) -> None:
    set_limit(8)
    set_limit(3, organization=outsider.organization)

    call_command("mirror_quotas")

    assert keeping_backend.accounts == {"acme": {"h100": 8}, "rival": {"h100": 3}}
    assert "2 organization(s)" in capsys.readouterr().out


def test_the_command_says_there_is_nothing_to_do_without_the_capability(
    settings, team, set_limit, capsys
) -> None:
    settings.PROVISIONING_BACKEND = "simulator"
    set_limit(8)

    call_command("mirror_quotas")

    assert "nothing to do" in capsys.readouterr().out
