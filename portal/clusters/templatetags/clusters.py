"""Template tags of the cluster page.

Its nodes table has a row per node (up to the largest cluster a customer may launch), so the
rows are one f-string each rather than a dozen template nodes, with the HTML the template
fragment gave (tests/clusters/test_templatetags.py compares them).
"""

from collections.abc import Iterable
from html import escape  # django.utils.html.escape without its check for lazy strings

from django import template
from django.utils.safestring import SafeString, mark_safe

from portal.clusters.selectors import NodeRow
from portal.instances.templatetags.instances import state_badge

register = template.Library()

HEAD = ' <span class="badge">head</span>'


def node_row(node: NodeRow) -> str:
    head = HEAD if node.node_index == 0 else ""
    return (
        '<tr data-testid="node">'
        f'<td><span class="mono">{escape(node.name)}</span>{head}</td>'
        f"<td>{state_badge(node)}</td>"
        f'<td class="mono">{escape(str(node.private_ip or "—"))}</td>'
        f'<td class="mono">{escape(str(node.ip or "—"))}</td>'
        f'<td class="mono faint hide-sm">{escape(node.backend_id or "not yet made")}</td>'
        "</tr>"
    )


@register.simple_tag
def node_rows(nodes: Iterable[NodeRow]) -> SafeString:
    """`{% node_rows nodes %}`: the `<tr>`s of the nodes table."""
    return mark_safe("".join(node_row(node) for node in nodes))  # noqa: S308 - escaped values
