"""The cluster page's node rows print what the template fragment they replace printed."""

import re

import pytest
from django.template import Context, Template

from portal.clusters import selectors
from portal.clusters.templatetags.clusters import node_rows
from portal.instances.models import Instance
from portal.instances.models import State as NodeState

pytestmark = pytest.mark.django_db

OLD_ROWS = (
    "{% load instances %}{% for node in nodes %}"
    '<tr data-testid="node">'
    '<td><span class="mono">{{ node.name }}</span>{% if node.node_index == 0 %} '
    '<span class="badge">head</span>{% endif %}</td>'
    "<td>{% state_badge node %}</td>"
    '<td class="mono">{{ node.private_ip|default:"—" }}</td>'
    '<td class="mono">{{ node.ip|default:"—" }}</td>'
    '<td class="mono faint hide-sm">{{ node.backend_id|default:"not yet made" }}</td>'
    "</tr>{% endfor %}"
)


def test_node_rows_are_the_old_templates_in_every_state_and_escaped(launch_cluster):
    cluster = launch_cluster(nodes=4)
    head, second, third, fourth = Instance.objects.filter(cluster_id=cluster.pk).order_by(
        "node_index"
    )
    Instance.objects.filter(pk=head.pk).update(
        state=NodeState.RUNNING, ip="203.0.113.7", private_ip="10.9.0.1", backend_id="m-1"
    )
    Instance.objects.filter(pk=second.pk).update(
        state=NodeState.RUNNING, private_ip="fd00::2", backend_id='m-<2>&"x"'
    )
    Instance.objects.filter(pk=third.pk).update(state=NodeState.STOPPING, backend_id="m-3")
    Instance.objects.filter(pk=fourth.pk).update(state=NodeState.FAILED)  # never made

    instances = list(selectors.cluster_nodes_for_cluster(cluster=cluster))
    old = Template(OLD_ROWS).render(Context({"nodes": instances}))
    new = node_rows(selectors.cluster_node_rows_for_cluster(cluster=cluster))

    assert new == old
    assert new.count("<tr") == 4 and new.count(">head<") == 1
    assert "m-&lt;2&gt;&amp;&quot;x&quot;" in new
    assert re.search(r"pulse.*Stopping", new) and "not yet made" in new


def test_the_heads_row_gives_the_instances_ssh_command(launch_cluster):
    cluster = launch_cluster(nodes=2)
    Instance.objects.filter(cluster_id=cluster.pk, node_index=0).update(
        ip="203.0.113.7", ssh_port=2222, ssh_user="ops"
    )

    head, _ = selectors.cluster_node_rows_for_cluster(cluster=cluster)
    instance = Instance.objects.get(cluster_id=cluster.pk, node_index=0)

    assert head.ssh_command == instance.ssh_command == "ssh -p 2222 ops@203.0.113.7"
