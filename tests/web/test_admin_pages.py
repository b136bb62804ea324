"""The admin's hot loops in Python (portal/web/templatetags/admin_pages.py) write the HTML of
Django's own templates and tags."""

from pathlib import Path

import django
import pytest
from django.contrib import admin
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.html import parse_html
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.instances.models import State
from portal.orgs.models import Suspension
from portal.web import admin as web_admin
from tests.factories import UserFactory
from tests.web.admin_rows import djangos_rows, our_rows

pytestmark = pytest.mark.django_db

DJANGOS_APP_LIST = (
    Path(django.__file__).parent / "contrib/admin/templates/admin/app_list.html"
).read_text()


def assert_html_equal(ours: str, djangos: str) -> None:
    assert parse_html(ours) == parse_html(djangos)


def app_list_context(path: str, *, show_changelinks: bool, superuser: bool = True) -> Context:
    request = RequestFactory().get(path)
    request.user = UserFactory(is_staff=True, is_superuser=superuser)
    return Context(
        {
            "request": request,
            "app_list": admin.site.get_app_list(request),
            "show_changelinks": show_changelinks,
        }
    )


@pytest.mark.parametrize("show_changelinks", [False, True])  # the sidebar, the index
def test_the_app_list_is_djangos_markup(show_changelinks):
    path = reverse("admin:instances_instance_changelist")
    context = app_list_context(path, show_changelinks=show_changelinks)
    ours = Template("{% load admin_pages %}{% admin_app_list %}").render(context)
    djangos = Template(DJANGOS_APP_LIST).render(context)
    assert_html_equal(ours, djangos)
    assert 'aria-current="page">Instances</a>' in ours  # the current model is marked
    assert ours.count(" current-model") == 1


def test_the_app_list_of_someone_who_may_see_nothing():
    context = app_list_context("/admin/", show_changelinks=True, superuser=False)
    ours = Template("{% load admin_pages %}{% admin_app_list %}").render(context)
    assert_html_equal(ours, Template(DJANGOS_APP_LIST).render(context))
    assert "permission" in ours


def test_every_admin_page_uses_it(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:orgs_suspension_changelist"))
    assert page.status_code == 200
    assert 'id="nav-sidebar"' in page.text
    assert page.text.count('<tr class="model-instance">') == 1


def test_the_rows_of_a_list_with_a_boolean_a_date_and_a_link(client, team):
    """Suspensions: a callable shown as a boolean icon, dates, an empty date, a row link."""
    from portal.orgs import services

    staff = UserFactory(is_staff=True, is_superuser=True)
    services.organization_suspend(
        organization=team.organization, reason="Unpaid <invoice> & more", by=staff
    )
    client.force_login(staff)
    response = client.get(reverse("admin:orgs_suspension_changelist") + "?o=-4")
    cl = response.context["cl"]
    assert cl.result_count == Suspension.objects.count() == 1
    assert our_rows(cl) == djangos_rows(cl)
    assert our_rows(cl)[0] in response.text
    assert "&lt;invoice&gt; &amp; more" in our_rows(cl)[0]


@pytest.mark.parametrize("superuser", [True, False])
def test_the_sites_app_list_is_djangos(superuser):
    """portal/web/admin_site.py builds the list without reversing its URLs on every page: the
    same apps, models, permissions and URLs as Django's AdminSite, for a superuser and for
    staff who may only view one model."""
    from django.contrib.auth.models import Permission

    from portal.web.admin_site import PortalAdminSite

    assert isinstance(admin.site, PortalAdminSite)
    djangos = admin.AdminSite(name=admin.site.name)
    djangos._registry = admin.site._registry
    user = UserFactory(is_staff=True, is_superuser=superuser)
    if not superuser:
        user.user_permissions.add(Permission.objects.get(codename="view_suspension"))
    for _ in range(2):  # the second time from the kept URLs
        request = RequestFactory().get("/admin/")
        request.user = type(user).objects.get(pk=user.pk)
        ours = admin.site.get_app_list(request)
        assert ours == djangos.get_app_list(request)
        assert admin.site.get_app_list(request, app_label="orgs") == djangos.get_app_list(
            request, app_label="orgs"
        )
    models = [m["object_name"] for app in ours for m in app["models"]]
    assert ("Instance" in models) is superuser and "Suspension" in models


def test_the_kept_sidebar_follows_a_staff_members_permissions(client):
    """The app list and its HTML are kept between requests per set of permissions: a staff
    member given a model's permission sees it in the sidebar at the next page."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True, is_superuser=False)
    user.user_permissions.add(Permission.objects.get(codename="view_suspension"))
    client.force_login(user)
    suspensions = reverse("admin:orgs_suspension_changelist")
    instances_link = f'href="{reverse("admin:instances_instance_changelist")}"'
    for _ in range(2):
        page = client.get(suspensions)
        assert page.status_code == 200 and instances_link not in page.text
    user.user_permissions.add(Permission.objects.get(codename="view_instance"))
    page = client.get(suspensions)
    assert instances_link in page.text
    assert 'class="model-suspension current-model"' in page.text
    other = client.get(reverse("admin:instances_instance_changelist"))
    assert 'class="model-instance current-model"' in other.text
    assert 'class="model-suspension current-model"' not in other.text


def analysed_fleet(client, make_instance, *, running: int, stopped: int = 0) -> None:
    """Instances in the planner's statistics (ANALYZE), and the client signed in as staff."""
    for _ in range(running):
        make_instance(State.RUNNING)
    for _ in range(stopped):
        make_instance(State.STOPPED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE instances_instance")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))


def shown(response) -> str:
    """The page's text with its whitespace folded, as a reader sees it."""
    return " ".join(response.text.split())


def test_a_whole_large_table_is_counted_from_the_planners_estimate(
    client, make_instance, monkeypatch
):
    """No COUNT(*) of 100,000 instances on every page: the unfiltered list says "about N"
    from the table's statistics; a filtered one, or a small table, counts its rows exactly."""
    analysed_fleet(client, make_instance, running=3, stopped=1)
    changelist = reverse("admin:instances_instance_changelist")

    small = client.get(changelist)
    assert not small.context["cl"].paginator.estimated
    assert "4 instances" in shown(small) and "about 4" not in shown(small)

    monkeypatch.setattr(web_admin, "ESTIMATED_FROM", 2)
    with CaptureQueriesContext(connection) as captured:
        large = client.get(changelist)
    assert large.context["cl"].paginator.estimated
    assert "about 4 instances" in shown(large)
    assert not [q for q in captured if q["sql"].startswith("SELECT COUNT(*)")]

    filtered = client.get(changelist + "?state__exact=running")
    assert not filtered.context["cl"].paginator.estimated
    assert filtered.context["cl"].result_count == 3


def test_a_long_filtered_list_counts_up_to_a_limit_then_says_about_the_planners_estimate(
    client, make_instance, monkeypatch
):
    """The 10,000 running instances of a region are not COUNTed on every page: a filtered
    list counts exactly up to COUNTED_UP_TO and past it says "about N" from the planner, and
    its page links never lead to an error, even past the estimate."""
    from portal.instances.admin import InstanceAdmin

    analysed_fleet(client, make_instance, running=4, stopped=1)
    running = reverse("admin:instances_instance_changelist") + "?state__exact=running"

    exact = client.get(running)
    assert not exact.context["cl"].paginator.estimated
    assert "4 instances" in shown(exact)

    monkeypatch.setattr(web_admin, "COUNTED_UP_TO", 2)
    monkeypatch.setattr(InstanceAdmin, "list_per_page", 2)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(running)
    cl = page.context["cl"]
    assert cl.paginator.estimated and cl.result_count == 4
    assert "about 4 instances" in shown(page)
    counts = [q["sql"] for q in captured if "COUNT(*)" in q["sql"]]
    assert counts and all("LIMIT 3" in sql for sql in counts)
    with CaptureQueriesContext(connection) as captured:
        second = client.get(running + "&p=2&o=-1")
    assert second.status_code == 200 and len(second.context["cl"].result_list) == 2
    assert "about 4 instances" in shown(second)  # the estimate kept: no count, no EXPLAIN
    assert not [q for q in captured if "COUNT(*)" in q["sql"] or "EXPLAIN" in q["sql"]]
    stopped = client.get(reverse("admin:instances_instance_changelist") + "?state__exact=stopped")
    assert "1 instance" in shown(stopped)  # another filter is counted for itself
    past = client.get(running + "&p=9")
    assert past.status_code == 200 and list(past.context["cl"].result_list) == []


def test_a_filtered_list_whose_estimate_is_below_its_count_says_more_than(
    client, make_instance, monkeypatch
):
    analysed_fleet(client, make_instance, running=1)  # the planner's statistics: one row
    for _ in range(3):
        make_instance(State.RUNNING)
    monkeypatch.setattr(web_admin, "COUNTED_UP_TO", 2)
    page = client.get(reverse("admin:instances_instance_changelist") + "?state__exact=running")
    assert page.context["cl"].paginator.more_than == 2
    assert "more than 2 instances" in shown(page)


@pytest.mark.parametrize(
    "format_string",
    ["N j, Y, P", "Y-m-d H:i:s.u", r"jS F Y \a\t g:i A", "D, d M y h a f", "l L W o t z E b"],
)
def test_a_lists_dates_are_written_as_dateformat_writes_them(format_string):
    """The list's date column keeps each specifier's text per day or time of day within a
    page: the same text as `dateformat.format` for every row."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from django.utils import dateformat

    from portal.web.templatetags.admin_pages import datetime_formatter

    text = datetime_formatter(format_string)
    assert text is not None
    start = datetime(2026, 2, 27, 23, 58, 59, 123456, tzinfo=UTC)
    for zone in (UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")):
        for step in range(300):
            value = (start + timedelta(minutes=37 * step, seconds=step)).astimezone(zone)
            assert text(value) == dateformat.format(value, format_string)
    # Midnight, noon, the hour on the dot and the minutes either side of them, both halves.
    for hour, minute in [(0, 0), (0, 1), (11, 59), (12, 0), (12, 30), (1, 0), (13, 0), (23, 5)]:
        value = datetime(2026, 3, 1, hour, minute, tzinfo=UTC)
        assert text(value) == dateformat.format(value, format_string)


def test_formats_with_a_time_zone_or_iso_forms_are_left_to_dateformat():
    from portal.web.templatetags.admin_pages import datetime_formatter

    for format_string in ("c", "r", "U", "Y-m-d e", "H:i T", "O", "I Z"):
        assert datetime_formatter(format_string) is None


def test_the_fleet_lists_action_form_is_djangos_markup_kept_per_choices():
    from django.contrib.admin import helpers

    from portal.web.admin import KeptActionForm

    def both(choices, data=None):
        ours, djangos = KeptActionForm(data, auto_id=None), helpers.ActionForm(data, auto_id=None)
        ours.fields["action"].choices = djangos.fields["action"].choices = choices
        return [str(ours[name]) for name in ("action", "select_across")], [
            str(djangos[name]) for name in ("action", "select_across")
        ]

    terminate = [("", "---------"), ("terminate", "Terminate the selected instances")]
    resync = [("", "---------"), ("resync", "Resync the selected instances")]
    for _view in range(2):  # rendered, then kept
        ours, djangos = both(terminate)
        assert ours == djangos
        assert "Terminate the selected instances" in ours[0]
    ours, djangos = both(resync)  # other choices: not the kept HTML
    assert ours == djangos and "Resync" in ours[0] and "Terminate" not in ours[0]
    ours, djangos = both(terminate, {"action": "terminate", "select_across": "1"})
    assert ours == djangos and 'value="terminate" selected' in ours[0]
