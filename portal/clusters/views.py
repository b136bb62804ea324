"""Cluster pages. Thin: scope through selectors, change through services, render.

htmx: the list and the cluster page poll their live region every 2 s while the cluster or a
node is in transition; the same view renders just that partial for htmx requests.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.clusters import lifecycle, selectors, services
from portal.clusters.conf import setting
from portal.clusters.forms import ClusterLaunchForm
from portal.instances.selectors import launch_options
from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.quotas.services import QuotaExceeded
from portal.volumes.selectors import volume_attachable_for_organization
from portal.web.forms import form_add_application_error

ACTION_DONE = {
    "stop": "Stopping {name}: all its nodes stop together and stop billing for GPUs.",
    "start": "Starting {name}: all its nodes start together.",
    "terminate": "Terminating {name} and all its nodes.",
}


def _cluster(request: OrganizationRequest, pk: int):
    cluster = selectors.cluster_get_for_organization(organization=request.organization, pk=pk)
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster


@organization_view("instances.view")
def cluster_list(request: OrganizationRequest) -> HttpResponse:
    clusters = selectors.cluster_list_for_organization(organization=request.organization)
    page = Paginator(clusters, setting("CLUSTERS_PER_PAGE")).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "clusters": list(page.object_list),
        "polling": any(c.is_transitional for c in page.object_list),
        "can_manage": request.membership.can("instances.manage"),
    }
    template = "clusters/list.html#table" if request.htmx else "clusters/list.html"
    return render(request, template, context)


@organization_view("instances.view")
def cluster_detail(request: OrganizationRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    nodes = selectors.cluster_node_rows_for_cluster(cluster=cluster)
    head = nodes[0] if nodes else None
    context = {
        "cluster": cluster,
        "nodes": nodes,
        "head": head,
        "events": selectors.cluster_events_for_cluster(cluster=cluster),
        "actions": lifecycle.allowed_actions(cluster.state),
        "can_manage": request.membership.can("instances.manage"),
        "watching": cluster.is_transitional
        or cluster.reclaim_pending
        or any(n.is_transitional for n in nodes),
        "running_nodes": sum(1 for n in nodes if n.state == "running"),
        "volumes": selectors.cluster_volume_list_for_head(head_id=head.pk) if head else [],
    }
    template = "clusters/detail.html#live" if request.htmx else "clusters/detail.html"
    return render(request, template, context)


@organization_view("instances.manage")  # tenant and role first: an outsider's GET is a 404
@require_POST
def cluster_action(request: OrganizationRequest, pk: int, action: str) -> HttpResponse:
    cluster = _cluster(request, pk)
    try:
        services.cluster_action(
            membership=request.membership,
            cluster=cluster,
            action=action,
            confirm_name=request.POST.get("confirm_name", "") if action == "terminate" else None,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, ACTION_DONE[action].format(name=cluster.name))
    url = reverse("clusters:detail", args=[request.organization.slug, cluster.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@organization_view("instances.manage")
def cluster_launch(request: OrganizationRequest) -> HttpResponse:
    options = launch_options(membership=request.membership)
    volumes = list(
        volume_attachable_for_organization(organization=request.organization).select_related(
            "region"
        )
    )
    form_options = {
        "volumes": volumes,
        "offers": options.offers,
        "regions": options.regions,
        "images": options.images,
        "keys": options.keys,
        "max_nodes": services.cluster_max_nodes(),
    }
    quota_request_url = None
    status = 200
    if request.method == "POST":
        form = ClusterLaunchForm(request.POST, **form_options)
        if form.is_valid():
            data = form.cleaned_data
            try:
                cluster = services.cluster_launch(
                    membership=request.membership,
                    name=data["name"],
                    instance_type=data["instance_type"],
                    region=data["region"],
                    image=data["image"],
                    nodes=data["nodes"],
                    ssh_key_ids=data["ssh_keys"],
                    preemptible=data["preemptible"],
                    idempotency_key=data["idempotency_key"],
                    volume_ids=data["volumes"],
                )
            except QuotaExceeded as error:
                form.add_error(None, error.message)
                quota_request_url = error.request_url
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(request, f"Launching {cluster.name}: {cluster.node_count} nodes.")
                return redirect("clusters:detail", org=request.organization.slug, pk=cluster.pk)
        status = 400
    else:
        form = ClusterLaunchForm(**form_options)
    context = {
        "form": form,
        "options": options,
        "volumes": volumes,
        "quota_request_url": quota_request_url,
    }
    return render(request, "clusters/launch.html", context, status=status)
