"""The quotas page's limit cells print exactly what the included template they replace did."""

import pytest
from django.template import Context, Template

from portal.quotas.selectors import LimitUse

OLD_CELLS = (
    '<td class="num">{{ use.limit }}</td>\n'
    '<td class="num">{{ use.used }}</td>\n'
    '<td class="num"><strong class="{% if use.limit and not use.free %}text-danger{% endif %}">'
    '{{ use.free }}</strong>{% if use.limit %}<span class="meter{% if not use.free %} full'
    '{% endif %}" title="{{ use.percent_used }}% in use"><span style="width:'
    '{{ use.percent_used }}%"></span></span>{% endif %}</td>'
)
NEW_CELLS = "{% load quotas %}{% limit_use_cells use %}"


@pytest.mark.parametrize(
    "limit,used", [(0, 0), (0, 3), (8, 0), (8, 3), (8, 8), (8, 11), (1000, 333)]
)
def test_a_limits_cells_read_as_the_included_template_wrote_them(limit, used):
    context = {"use": LimitUse(limit, used)}
    assert Template(NEW_CELLS).render(Context(context)) == Template(OLD_CELLS).render(
        Context(context)
    )


def test_a_limit_used_up_shows_a_full_meter_in_red():
    cells = Template(NEW_CELLS).render(Context({"use": LimitUse(8, 8)}))
    assert 'class="text-danger">0<' in cells and 'class="meter full"' in cells
    assert 'style="width:100%"' in cells
