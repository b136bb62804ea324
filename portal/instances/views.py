"""Instance pages. Thin: scope through selectors, change through services, render.

htmx: the list and the detail page poll their live region every 2 s while an instance is in
transition; the same view renders just that partial ("page.html#region") for htmx requests.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.instances import lifecycle, selectors, services
from portal.instances.conf import setting
from portal.instances.forms import LaunchForm
from portal.lib.errors import ApplicationError
from portal.orgs.decorators import organization_view
from portal.quotas.services import QuotaExceeded
from portal.web.forms import form_add_application_error

ACTION_DONE = {
    "stop": "Stopping {name}. It stops billing for GPUs once stopped.",
    "start": "Starting {name}.",
    "reboot": "Rebooting {name}.",
    "terminate": "Terminating {name}.",
}


@organization_view("instances.view")
def instance_list(request: HttpRequest) -> HttpResponse:
    instances = selectors.instance_list_rows(membership=request.membership)
    page = Paginator(instances, setting("INSTANCES_PER_PAGE")).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    selectors.price_rows(rows)
    for instance in rows:
        instance.cost = selectors.instance_cost_so_far(instance=instance)
    context = {
        "page": page,
        "instances": rows,
        "polling": selectors.any_in_transition(rows),
        "can_manage": request.membership.can("instances.manage"),
    }
    template = "instances/list.html#table" if request.htmx else "instances/list.html"
    return render(request, template, context)


@organization_view("instances.view")
def instance_detail(request: HttpRequest, pk: int) -> HttpResponse:
    instance = selectors.instance_get_for_member(membership=request.membership, pk=pk)
    context = {
        "instance": instance,
        "events": selectors.instance_event_list_for_instance(instance=instance),
        "actions": lifecycle.allowed_actions(instance.state),
        "can_manage": request.membership.can("instances.manage"),
        "cost": selectors.instance_cost_so_far(instance=instance),
        "hourly": selectors.instance_hourly_price(instance=instance),
    }
    template = "instances/detail.html#live" if request.htmx else "instances/detail.html"
    return render(request, template, context)


@organization_view("instances.manage")  # tenant and role first: an outsider's GET is a 404
@require_POST
def instance_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    instance = selectors.instance_get_for_member(membership=request.membership, pk=pk)
    try:
        services.instance_action(
            membership=request.membership,
            instance=instance,
            action=action,
            confirm_name=request.POST.get("confirm_name", "") if action == "terminate" else None,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, ACTION_DONE[action].format(name=instance.name))
    url = reverse("instances:detail", args=[request.organization.slug, instance.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _initial_from(request, options) -> dict:
    """Launch again what an earlier instance was (the interrupted e-mail links here)."""
    source_id = request.GET.get("from", "")
    if not source_id.isdigit():
        return {}
    source = selectors.instance_get_for_member(membership=request.membership, pk=int(source_id))
    fingerprints = {key["fingerprint"] for key in source.ssh_keys}
    return {
        "instance_type": source.instance_type.code,
        "region": source.region.code,
        "image": source.image.code,
        "preemptible": source.preemptible,
        "ssh_keys": [str(k.pk) for k in options.keys if k.fingerprint in fingerprints],
        "name": source.name if source.is_final else "",
    }


@organization_view("instances.manage")
def instance_launch(request: HttpRequest) -> HttpResponse:
    options = selectors.launch_options(membership=request.membership)
    form_options = {"regions": options.regions, "images": options.images, "keys": options.keys}
    quota_request_url = None
    status = 200
    if request.method == "POST":
        form = LaunchForm(request.POST, **form_options)
        if form.is_valid():
            data = form.cleaned_data
            try:
                instance = services.instance_launch(
                    membership=request.membership,
                    name=data["name"],
                    instance_type=data["instance_type"],
                    region=data["region"],
                    image=data["image"],
                    ssh_key_ids=data["ssh_keys"],
                    preemptible=data["preemptible"],
                    idempotency_key=data["idempotency_key"],
                )
            except QuotaExceeded as error:
                form.add_error(None, error.message)
                quota_request_url = error.request_url
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(request, f"Launching {instance.name}.")
                return redirect("instances:detail", org=request.organization.slug, pk=instance.pk)
        status = 400
    elif request.htmx:
        # The form changed: show the summary for what is chosen now.
        form = LaunchForm(request.GET, **form_options)
        form.is_valid()
    else:
        form = LaunchForm(initial=_initial_from(request, options), **form_options)
    context = {
        "form": form,
        "options": options,
        "summary": _summary(form, options),
        "quota_request_url": quota_request_url,
        "preemptible_notice_minutes": 2,
    }
    template = "instances/launch.html#summary" if request.htmx else "instances/launch.html"
    return render(request, template, context, status=status)


def _summary(form, options) -> dict:
    """The chosen type's price, free capacity and quota in the chosen region, with warnings."""
    values = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else {}
    if not form.is_bound:
        values = form.initial
    offer = options.offer(values.get("instance_type") or "")
    if offer is None:
        return {}
    preemptible = bool(values.get("preemptible"))
    place = offer.place(values.get("region") or "")
    gpus = offer.instance_type.gpu_count
    summary = {
        "offer": offer,
        "preemptible": preemptible,
        "hourly": offer.offer.preemptible_hourly if preemptible else offer.offer.on_demand_hourly,
        "place": place,
    }
    if place is not None:
        quota_free = place.quota_free_preemptible if preemptible else place.quota_free
        summary["quota_free"] = quota_free
        summary["quota_short"] = quota_free < gpus
        summary["no_capacity"] = place.free is not None and place.free < 1
    return summary
