"""ReadBuiltOnce: a hot read built by the ORM once, giving what the ORM gives at every read."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Count, F, Value
from django.test.utils import CaptureQueriesContext

from portal.capacity.models import CapacityPeriod
from portal.catalog.models import Region
from portal.instances.models import Instance
from portal.web.sql import Among, ReadBuiltOnce
from tests.catalog.factories import ImageFactory, InstanceTypeFactory, RegionFactory
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _by_code(code: str):
    return Region.objects.filter(code=code).values_list("code", "name").order_by()


def test_each_read_takes_its_own_value_and_sees_the_rows_of_now():
    read = ReadBuiltOnce(_by_code, code=str)
    RegionFactory(code="us-east-9", name="US East 9")
    RegionFactory(code="eu-west-9", name="EU West 9")

    assert read.rows(code="us-east-9") == [("us-east-9", "US East 9")]
    assert read.rows(code="eu-west-9") == [("eu-west-9", "EU West 9")]
    Region.objects.filter(code="eu-west-9").update(name="Renamed")
    assert read.rows(code="eu-west-9") == [("eu-west-9", "Renamed")]


def test_a_read_is_one_statement_and_gives_what_the_orm_gives():
    RegionFactory(code="us-east-9")
    read = ReadBuiltOnce(
        lambda: Region.objects.values("code").annotate(n=Count("pk")).values_list("code", "n")
    )
    read.rows()

    with CaptureQueriesContext(connection) as queries:
        rows = read.rows()

    assert len(queries) == 1
    assert sorted(rows) == sorted(
        Region.objects.values("code").annotate(n=Count("pk")).values_list("code", "n")
    )


def test_datetimes_come_back_as_the_orm_gives_them():
    read = ReadBuiltOnce(
        lambda at: Region.objects.annotate(at=Value(at)).values_list("code", "at")[:1],
        at=datetime,
    )
    RegionFactory(code="us-east-9")
    later = datetime(2026, 6, 1, tzinfo=UTC)

    assert read.rows(at=later) == [("us-east-9", later)]


def test_a_values_list_that_the_database_would_answer_in_another_order_is_refused():
    read = ReadBuiltOnce(lambda: Region.objects.annotate(n=Count("pk")).values_list("n", "code"))

    with pytest.raises(ValueError, match="reorder it"):
        read.rows()


def test_a_placeholder_the_query_does_not_use_is_refused():
    read = ReadBuiltOnce(lambda code: Region.objects.values_list("code"), code=str)

    with pytest.raises(ValueError, match="placeholder"):
        read.rows(code="us-east-9")


def test_model_rows_come_back_as_instances_of_the_model():
    made = RegionFactory(code="us-east-9", name="US East 9", location="Ashburn")
    read = ReadBuiltOnce(lambda code: Region.objects.filter(code=code).order_by(), code=str)

    (region,) = read.objects(code="us-east-9")

    assert isinstance(region, Region)
    assert (region.pk, region.name, region.location) == (made.pk, "US East 9", "Ashburn")
    assert not region._state.adding  # saved as the row it was read from
    region.name = "Renamed"
    region.save(update_fields=["name"])
    assert Region.objects.get(pk=made.pk).name == "Renamed"


def test_model_rows_come_with_their_related_rows_and_annotations_as_the_queryset_gives():
    organization = OrganizationFactory()
    launcher = UserFactory()
    MembershipFactory(organization=organization, user=launcher)
    itype, region, image = InstanceTypeFactory(), RegionFactory(), ImageFactory()
    launched, orphaned = (
        Instance.objects.create(
            organization=organization,
            created_by=by,
            name=name,
            instance_type=itype,
            region=region,
            image=image,
            gpus=1,
        )
        for name, by in (("launched", launcher), ("orphaned", None))
    )

    def with_launchers(org: int):
        return (
            Instance.objects.filter(organization_id=org)
            .select_related("created_by", "instance_type__gpu_model")
            .annotate(event_count=Count("events"))
            .order_by("name")
        )

    read = ReadBuiltOnce(with_launchers, org=int)
    with CaptureQueriesContext(connection) as queries:
        found = read.objects(org=organization.pk)
        seen = [
            (i.pk, i.created_by.email if i.created_by else None, i.instance_type.gpu_model.code)
            for i in found
        ]

    assert len(queries) == 1  # the related rows came with the instances
    assert seen == [
        (launched.pk, launcher.email, itype.gpu_model.code),
        (orphaned.pk, None, itype.gpu_model.code),
    ]
    assert [i.event_count for i in found] == [
        i.event_count for i in with_launchers(organization.pk)
    ]
    found[1].name = "renamed"
    found[1].save(update_fields=["name"])
    assert Instance.objects.get(pk=orphaned.pk).name == "renamed"


def test_a_read_of_one_row_by_its_key_gives_it_or_says_it_is_gone():
    made = RegionFactory(code="us-east-9")
    read = ReadBuiltOnce(lambda code: Region.objects.filter(code=code), code=str)

    assert read.get(code="us-east-9").pk == made.pk
    assert read.first(code="us-east-9").pk == made.pk
    assert read.first(code="nowhere-9") is None
    with pytest.raises(Region.DoesNotExist, match="Region matching query does not exist"):
        read.get(code="nowhere-9")


def test_a_values_list_read_has_no_instances():
    read = ReadBuiltOnce(lambda: Region.objects.values_list("code"))

    with pytest.raises(ValueError, match="values_list"):
        read.objects()


def test_a_list_of_ids_is_one_parameter_and_the_statement_the_same_for_any_number():
    regions = [RegionFactory(code=f"xx-{n}-9") for n in range(3)]
    read = ReadBuiltOnce(
        lambda ids: Region.objects.filter(Among(F("id"), ids)).order_by("id").values_list("code"),
        ids=list,
    )

    with CaptureQueriesContext(connection) as queries:
        one = read.rows(ids=[regions[0].pk])
        three = read.rows(ids=[r.pk for r in regions])
        none = read.rows(ids=[])

    assert one == [("xx-0-9",)]
    assert three == [("xx-0-9",), ("xx-1-9",), ("xx-2-9",)]
    assert none == []
    assert len(queries) == 3
    assert all("= ANY(" in query["sql"] for query in queries)  # not IN (%s, %s, ...)


def test_a_positive_big_integer_column_takes_its_value_at_each_read():
    # Django refuses a negative value for such a column (an empty result, no SQL) and sends
    # its values wrapped as 8-byte integers: the placeholder is found and kept so.
    start = datetime(2026, 6, 1, tzinfo=UTC)
    for n, fleet in enumerate((2_000, 16_000)):
        CapacityPeriod.objects.create(
            region="us-east-9", gpu_model="h100", start=start.replace(hour=n), fleet=fleet
        )
    read = ReadBuiltOnce(
        lambda fleet: CapacityPeriod.objects.filter(fleet=fleet).values_list("fleet"), fleet=int
    )

    assert read.rows(fleet=2_000) == [(2_000,)]
    assert read.rows(fleet=16_000) == [(16_000,)]
    assert read.rows(fleet=3) == []
