"""Django admin for instances: filters, the read-only timeline, terminate and resync actions."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import format_html

from portal.instances.admin import InstanceAdmin
from portal.instances.models import Instance, State
from portal.orgs.admin_tools import organization_filter_link
from tests.factories import UserFactory
from tests.web.admin_rows import djangos_rows, our_rows


@pytest.fixture
def staff_client(db, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def sent(monkeypatch):
    calls = []
    for name in ("terminate", "resync"):
        monkeypatch.setattr(
            f"portal.instances.tasks.instance_{name}.delay",
            lambda pk, name=name: calls.append((name, pk)),
        )
    return calls


def test_the_changelist_filters_by_state_region_and_organization(
    staff_client, make_instance, outsider, catalog
):
    running = make_instance(State.RUNNING)
    stopped = make_instance(State.STOPPED, region=catalog.eu_west)
    rival = make_instance(State.RUNNING, organization=outsider.organization)
    changelist = reverse("admin:instances_instance_changelist")
    page = staff_client.get(changelist)
    assert page.status_code == 200
    for title in ("By state", "By region", "By organization"):
        assert title in page.text
    filtered = staff_client.get(changelist + "?state__exact=running")
    assert running.name in filtered.text and stopped.name not in filtered.text
    by_org = staff_client.get(changelist + f"?organization__id__exact={outsider.organization_id}")
    assert rival.name in by_org.text and running.name not in by_org.text


def test_the_changelist_searches_by_name_without_counting_the_whole_fleet_or_joining(
    staff_client, make_instance, catalog
):
    wanted = make_instance(State.RUNNING, name="needle-1")
    other = make_instance(State.RUNNING, name="hay-2")
    changelist = reverse("admin:instances_instance_changelist")
    with CaptureQueriesContext(connection) as captured:
        found = staff_client.get(changelist + "?q=needle")
    assert wanted.name in found.text and other.name not in found.text
    # The page offers "Show all" instead of the fleet's total, and counts nothing: its one
    # match fits the page, so the page's rows are the count.
    assert "Show all" in found.text
    assert found.context["cl"].result_count == 1
    assert not [q for q in captured if q["sql"].startswith("SELECT COUNT(*)")]
    # The search's conditions are on the instances alone (their trigram indexes), not on a
    # join with every organization, and no date hierarchy runs it again.
    searched = [
        q["sql"] for q in captured if "instances_instance" in q["sql"] and "needle" in q["sql"]
    ]
    assert len(searched) == 1  # the page's rows, which are the count
    assert not any('UPPER("orgs_organization"."name"' in sql for sql in searched)


def test_a_search_with_more_matches_than_a_page_counts_them_and_pages_through(
    staff_client, make_instance, monkeypatch
):
    monkeypatch.setattr(InstanceAdmin, "list_per_page", 2)
    made = [make_instance(State.RUNNING, name=f"needle-{n}") for n in range(3)]
    make_instance(State.RUNNING, name="hay")
    changelist = reverse("admin:instances_instance_changelist")
    with CaptureQueriesContext(connection) as captured:
        first = staff_client.get(changelist, {"q": "needle"})
    cl = first.context["cl"]
    assert cl.result_count == 3 and cl.multi_page
    assert len(cl.result_list) == 2
    assert "3 instances" in " ".join(first.text.split())
    assert len([q for q in captured if q["sql"].startswith("SELECT COUNT(*)")]) == 1
    second = staff_client.get(changelist, {"q": "needle", "p": 2})
    shown = {i.name for i in cl.result_list} | {i.name for i in second.context["cl"].result_list}
    assert shown == {i.name for i in made}


def test_a_search_whose_matches_just_fill_a_page_is_one_page_without_a_count(
    staff_client, make_instance, monkeypatch
):
    monkeypatch.setattr(InstanceAdmin, "list_per_page", 2)
    for n in range(2):
        make_instance(State.RUNNING, name=f"needle-{n}")
    with CaptureQueriesContext(connection) as captured:
        page = staff_client.get(reverse("admin:instances_instance_changelist"), {"q": "needle"})
    cl = page.context["cl"]
    assert cl.result_count == 2 and not cl.multi_page and len(cl.result_list) == 2
    assert "2 instances" in " ".join(page.text.split())
    assert not [q for q in captured if q["sql"].startswith("SELECT COUNT(*)")]


def test_the_organization_filter_lists_no_organizations_and_a_rows_link_chooses_one(
    staff_client, make_instance, outsider
):
    mine = make_instance(State.RUNNING)
    rival = make_instance(State.RUNNING, organization=outsider.organization)
    changelist = reverse("admin:instances_instance_changelist")
    page = staff_client.get(changelist).text
    # Each row links to the list of its organization; the sidebar lists none of them.
    sidebar = page[page.index('id="changelist-filter"') :]
    sidebar = sidebar[: sidebar.index("</nav>")]
    assert "By organization" in sidebar and "Rival Labs" not in sidebar
    row_link = f'href="?organization__id__exact={outsider.organization_id}" title="Only this'
    assert page.count(row_link) == 1

    chosen = staff_client.get(changelist + f"?organization__id__exact={outsider.organization_id}")
    assert rival.name in chosen.text and mine.name not in chosen.text
    assert "Rival Labs" in chosen.text  # the filter names the chosen organization

    bad = staff_client.get(changelist + "?organization__id__exact=abc")
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_the_search_finds_by_any_part_of_a_name_ip_or_organization_and_ands_words(
    staff_client, make_instance, outsider
):
    trainer = make_instance(State.RUNNING, name="llm-trainer-7", ip="203.0.113.47")
    rival = make_instance(State.RUNNING, name="rival-box", organization=outsider.organization)
    other = make_instance(State.RUNNING, name="notebook", ip="198.51.100.3")
    changelist = reverse("admin:instances_instance_changelist")

    def found(q: str) -> set[str]:
        response = staff_client.get(changelist, {"q": q})
        assert response.status_code == 200
        return {i.name for i in response.context["cl"].result_list}

    assert found("TRAINER") == {trainer.name}
    assert found("113.4") == {trainer.name}
    assert found("rival labs") == {rival.name}
    assert found("Rival box") == {rival.name}  # every word, each in any field
    assert found("trainer notebook") == set()
    assert found(str(other.request_id)[:8]) == {other.name}


def test_the_change_page_shows_the_timeline_read_only(staff_client, make_instance):
    from portal.instances import lifecycle

    instance = make_instance(State.PROVISIONING)
    lifecycle.mark_running(instance.pk, ip="203.0.113.4")
    page = staff_client.get(reverse("admin:instances_instance_change", args=[instance.pk]))
    assert page.status_code == 200
    assert "Running at 203.0.113.4." in page.text
    assert 'name="events-0-message"' not in page.text  # not editable


def test_terminate_and_resync_actions_enqueue_tasks(
    staff_client, make_instance, sent, django_capture_on_commit_callbacks
):
    running = make_instance(State.RUNNING)
    ended = make_instance(State.TERMINATED)
    changelist = reverse("admin:instances_instance_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            changelist,
            {"action": "terminate", "_selected_action": [running.pk, ended.pk]},
            follow=True,
        )
    assert "Terminating 1 instance(s)." in response.text
    assert "cannot terminate" in response.text
    running.refresh_from_db()
    assert running.state == State.TERMINATING
    assert running.events.last().message == "Terminated by the operator's staff."
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(changelist, {"action": "resync", "_selected_action": [ended.pk]})
    assert sent == [("terminate", running.pk), ("resync", ended.pk)]


def test_a_rows_checkbox_is_the_markup_djangos_widget_renders(make_instance):
    instance = make_instance(name="quote-and-amp")
    ours = InstanceAdmin(Instance, admin.site).action_checkbox(instance)
    djangos = admin.ModelAdmin(Instance, admin.site).action_checkbox(instance)
    assert ours == djangos
    assert 'aria-label="Select this object for an action - ' in ours


def test_the_rows_are_the_html_djangos_renderer_writes(staff_client, make_instance, catalog):
    """The list's rows come from portal/web/templatetags/admin_pages.py: the same cells as
    Django's items_for_result (links keeping the filters, empty IPs, the preemptible icon,
    the state's label, dates)."""
    make_instance(State.RUNNING, name="a<b&c", ip="203.0.113.9", preemptible=True)
    make_instance(State.STOPPED, region=catalog.eu_west)
    make_instance(State.TERMINATED, backend_id="")
    # What no form would write, as a migration or a manual fix might: a blank backend id and a
    # state outside the choices are written as Django writes them ("-").
    odd = make_instance(State.STOPPED, name="odd-box")
    Instance.objects.filter(pk=odd.pk).update(backend_id="   ", state="retired")
    changelist = reverse("admin:instances_instance_changelist")
    for query in ["", "?state__exact=running", "?q=box&o=-3"]:
        response = staff_client.get(changelist + query)
        cl = response.context["cl"]
        assert cl.result_list
        assert our_rows(cl) == djangos_rows(cl)
        for row in our_rows(cl):
            assert row in response.text
    running = staff_client.get(changelist + "?state__exact=running").context["cl"]
    (row,) = our_rows(running)
    assert "a&lt;b&amp;c</a></th>" in row and "_changelist_filters=state__exact%3Drunning" in row


def test_the_lists_query_count_is_the_same_at_10_and_200_instances(
    staff_client, make_instance, catalog
):
    changelist = reverse("admin:instances_instance_changelist")
    urls = [
        changelist,
        f"{changelist}?state__exact=running&region__id__exact={catalog.us_east.pk}",
    ]

    def counts() -> list[int]:
        result = []
        for url in urls + [changelist + "?q=box"]:
            staff_client.get(url)
            with CaptureQueriesContext(connection) as captured:
                assert staff_client.get(url).status_code == 200
            result.append(len(captured))
        return result

    for _ in range(10):
        make_instance(State.RUNNING, ip="203.0.113.10")
    few = counts()
    for _ in range(190):
        make_instance(State.RUNNING, ip="203.0.113.10")
    # The same, but for the search's COUNT: its 10 matches fit one page and were counted by
    # the page's rows; 200 are counted.
    assert counts() == [few[0], few[1], few[2] + 1]


def test_the_lists_rows_read_only_the_columns_they_show(staff_client, make_instance):
    make_instance(State.RUNNING, ip="203.0.113.11")
    changelist = reverse("admin:instances_instance_changelist")
    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(changelist)
    (rows,) = [q["sql"] for q in captured if 'FROM "instances_instance" INNER JOIN' in q["sql"]]
    for shown in ('"name"', '"state"', '"ip"', '"backend_id"', '"created_at"', '"code"'):
        assert shown in rows
    for unshown in ('"synced_at"', '"state_reason"', '"vcpus"', '"require_two_factor"'):
        assert unshown not in rows
    # The organization's, type's and region's names are values of the row: no model is made
    # for them (not even their ids are read).
    columns = rows.split(" FROM ")[0]
    for unread in ("orgs_organization", "catalog_instancetype", "catalog_region"):
        assert f'"{unread}"."id"' not in columns
    cl = response.context["cl"]
    assert our_rows(cl) == djangos_rows(cl)
    (row,) = our_rows(cl)
    instance = Instance.objects.select_related("organization", "instance_type", "region").get()
    for shown in (instance.organization.name, instance.instance_type.name, instance.region.code):
        assert f">{shown}<" in row


def test_an_action_acts_on_whole_instances_not_the_lists_columns(
    staff_client, make_instance, monkeypatch
):
    running = make_instance(State.RUNNING)
    given = []
    monkeypatch.setattr(
        "portal.instances.services.instance_terminate_by_staff",
        lambda *, user, instance: given.append(instance.get_deferred_fields()),
    )
    changelist = reverse("admin:instances_instance_changelist")
    staff_client.post(changelist, {"action": "terminate", "_selected_action": [running.pk]})
    assert given == [set()]


def test_a_rows_organization_link_escapes_the_name_as_format_html_does():
    name = 'Tom & "Jerry" <Labs>'
    assert organization_filter_link(42, name) == format_html(
        '<a href="?{}={}" title="Only this organization">{}</a>',
        "organization__id__exact",
        42,
        name,
    )


def test_the_region_and_type_filters_list_the_catalog_as_djangos_filter_does(
    staff_client, make_instance, catalog
):
    """Their choices come from SQL built once per process (portal/web/admin.py CatalogFilter),
    read at every view: a region added after a first view is listed at the next."""
    from django.contrib.admin.filters import RelatedFieldListFilter

    from tests.catalog.factories import RegionFactory

    make_instance(State.RUNNING)
    changelist = reverse("admin:instances_instance_changelist")

    def choices() -> dict[str, list]:
        response = staff_client.get(changelist)
        cl, request = response.context["cl"], response.wsgi_request
        found = {}
        for spec in cl.filter_specs:
            if isinstance(spec, RelatedFieldListFilter):
                field = Instance._meta.get_field(spec.field_path)
                djangos = field.get_choices(
                    include_blank=False,
                    ordering=spec.field_admin_ordering(field, request, cl.model_admin),
                )
                assert spec.lookup_choices == djangos
                found[spec.field_path] = spec.lookup_choices
        return found

    before = choices()
    assert set(before) == {"region", "instance_type"}
    added = RegionFactory(code="aa-first-1", name="Added Region")
    after = choices()
    assert after["region"][0] == (added.pk, "Added Region (aa-first-1)")
    assert after["region"][1:] == before["region"]
