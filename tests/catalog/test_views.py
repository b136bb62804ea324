import pytest

from portal.catalog.templatetags.catalog import gigabytes

pytestmark = pytest.mark.django_db

URL = "/o/acme/catalog/"


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing", "viewer"])
def test_every_member_sees_the_catalog(team, gpu_catalog, client_for, role):
    response = client_for(team.by_role(role).user).get(URL)
    assert response.status_code == 200
    assert "8x H100 80GB" in response.content.decode()


def test_an_outsider_gets_404_and_a_stranger_is_sent_to_log_in(team, outsider, client, client_for):
    assert client.get(URL).status_code == 302
    assert client_for(outsider.user).get(URL).status_code == 404


def test_shows_specs_and_prices_per_hour_and_month(team, gpu_catalog, client_for):
    page = client_for(team.member.user).get(URL).content.decode()
    row = page[page.index('data-testid="offer-gpu_8x_h100"') :]
    row = row[: row.index("</tr>")]
    for text in [
        "8 ×",
        "NVIDIA H100 80GB SXM",
        "208 vCPUs",
        "1.8 TB RAM",
        "22 TB disk",
        "$19.92/hour</strong>",
        "$14,541.60/month",
        "$10.32",
        "$7,533.60",
        "$0.02/hour",  # stopped: its disk, what billing charges while it is stopped
        "us-east-1",
        "eu-west-1",
    ]:
        assert text in row, text
    assert "ap-old-1" not in page  # inactive region
    assert "gpu_8x_a100" not in page  # inactive type


def test_filters_by_region_and_gpu_model_from_the_query_string(team, gpu_catalog, client_for):
    client = client_for(team.member.user)
    page = client.get(URL, {"region": "eu-west-1"}).content.decode()
    assert "gpu_8x_h100" in page and "gpu_1x_l40s" in page and "gpu_1x_h100" not in page
    page = client.get(URL, {"region": "eu-west-1", "gpu": "l40s"}).content.decode()
    assert "gpu_1x_l40s" in page and "gpu_8x_h100" not in page
    page = client.get(URL, {"region": "us-east-1", "gpu": "l40s"}).content.decode()
    assert "Nothing matches" in page


def test_an_unknown_filter_says_so_and_filters_nothing(team, gpu_catalog, client_for):
    response = client_for(team.member.user).get(URL, {"region": "mars-1"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "There is no active region with that code." in page
    assert "gpu_1x_h100" in page and "gpu_1x_l40s" in page


def test_htmx_gets_only_the_table(team, gpu_catalog, client_for):
    response = client_for(team.member.user).get(
        URL, {"gpu": "h100"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section class="card flush" id="catalog-table"')
    assert "<html" not in page
    assert "gpu_1x_h100" in page and "gpu_1x_l40s" not in page


def test_filter_links_keep_their_href(team, gpu_catalog, client_for):
    page = client_for(team.member.user).get(URL).content.decode()
    assert 'href="?gpu=h100"' in page and 'hx-get="?gpu=h100"' in page
    assert 'href="?region=eu-west-1"' in page


def test_quota_links_only_for_those_who_may_ask(team, gpu_catalog, client_for):
    assert "Request quota" in client_for(team.admin.user).get(URL).content.decode()
    assert "Request quota" not in client_for(team.member.user).get(URL).content.decode()


def test_the_sidebar_links_to_catalog_and_quotas(team, gpu_catalog, client_for):
    page = client_for(team.viewer.user).get(URL).content.decode()
    assert 'href="/o/acme/catalog/" class="active"' in page
    assert 'href="/o/acme/quotas/"' in page


def test_sizes_read_well():  # money: tests/lib/test_money.py
    assert gigabytes(225) == "225 GB"
    assert gigabytes(22000) == "22 TB"
    assert gigabytes(1800) == "1.8 TB"
