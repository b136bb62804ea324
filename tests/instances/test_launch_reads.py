"""What instance_launch reads and writes (issue 21): its holds, name and reservation in one
query, the quota in one conditional UPDATE; each rule still applies at once, and launches
together never exceed a limit."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.instances import services
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.orgs import standing
from portal.orgs.models import Suspension
from portal.quotas.models import Quota
from tests.instances.conftest import set_quota


def _statements(queries) -> list[str]:
    """The statements a launch sends, without the test's own savepoints."""
    return [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]


def test_a_launch_is_seven_statements(launch):
    launch("warm-0")
    with CaptureQueriesContext(connection) as queries:
        launch("train-1")
    sql = _statements(queries)
    # The offer; the holds, the name and the reservation; the keys; the quota; the instance,
    # its event and its audit entry.
    assert len(sql) == 7, sql
    assert sql[1].count("EXISTS") >= 4  # suspension, invoice or budget, name, reservation
    assert sql[3].startswith('UPDATE "quotas_quota"')


def test_a_suspension_holds_the_next_launch_at_once_and_its_lifting_frees_it(launch, team):
    launch("before")
    suspension = Suspension.objects.create(organization=team.organization, reason="Unpaid.")
    with pytest.raises(ApplicationError, match="suspended by the operator: Unpaid.") as refused:
        launch("during")
    assert refused.value.code == "suspended"
    suspension.lifted_at = timezone.now()
    suspension.save()
    assert launch("after").name == "after"


def test_a_held_organization_hears_of_its_hold_before_a_mistake_in_the_form(launch, team):
    Suspension.objects.create(organization=team.organization, reason="Abuse report.")
    for overrides in ({"name": ""}, {"instance_type": "nope"}, {"idempotency_key": "x"}):
        with pytest.raises(ApplicationError) as refused:
            launch(**overrides)
        assert refused.value.code == "suspended", overrides
    assert not Instance.objects.exists()


def test_a_hold_kind_without_a_may_hold_expression_is_always_asked(launch, monkeypatch):
    launch("before")
    monkeypatch.setitem(
        standing._HOLDS,
        "test-freeze",
        standing._Registered(
            check=lambda org: "Frozen for the test.",
            code="frozen",
            blocks_launch=True,
            may_hold=None,
        ),
    )
    with pytest.raises(ApplicationError, match="Frozen for the test.") as refused:
        launch("during")
    assert refused.value.code == "frozen"


def test_a_name_taken_is_refused_before_the_quota_is_counted(launch, team, catalog):
    launch("web-1", instance_type="gpu_8x_h100")
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=8)  # now full
    with pytest.raises(ApplicationError) as refused:
        launch("web-1")
    assert refused.value.code == "name_taken"
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 8


THREADS = 12
LIMIT = 5


@pytest.mark.django_db(transaction=True)
def test_launches_at_once_never_exceed_the_limit(team, catalog, quota, ssh_key):
    """Twelve launches at once (each its own name) against a limit of five: five instances,
    seven refusals naming the limit, and the quota's use is five."""
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=LIMIT)
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            try:
                services.instance_launch(
                    membership=team.member,
                    name=f"job-{n}",
                    instance_type="gpu_1x_h100",
                    region="us-east-1",
                    image=catalog.ubuntu.code,
                    ssh_key_ids=[ssh_key.pk],
                    preemptible=False,
                    idempotency_key=None,
                )
                outcome = "launched"
            except ApplicationError as error:
                outcome = error.code or "refused"
            except Exception as error:  # noqa: BLE001 - anything else fails the test below
                outcome = f"error: {error!r}"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(outcomes) == sorted(
        ["launched"] * LIMIT + ["quota_exceeded"] * (THREADS - LIMIT)
    ), outcomes
    assert Instance.objects.filter(organization=team.organization).count() == LIMIT
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == LIMIT
