"""Instance pages. Thin: scope through selectors, change through services, render.

htmx: the list and the detail page poll their live region every 2 s while an instance is in
transition; the same view renders just that partial ("page.html#region") for htmx requests.
"""

import re
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.instances import lifecycle, selectors, services
from portal.instances.conf import setting
from portal.instances.forms import LaunchForm
from portal.lib.errors import ApplicationError
from portal.lib.money import format_price
from portal.market.chart import price_chart
from portal.market.selectors import spot_price_history
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.quotas import selectors as quota_selectors
from portal.quotas.services import QuotaExceeded
from portal.web.forms import form_add_application_error

ACTION_DONE = {
    "stop": "Stopping {name}. It stops billing for GPUs once stopped.",
    "start": "Starting {name}.",
    "reboot": "Rebooting {name}.",
    "terminate": "Terminating {name}.",
}


@organization_view("instances.view")
def instance_list(request: OrganizationRequest) -> HttpResponse:
    page, rows = selectors.instance_list_page(
        membership=request.membership,
        number=request.GET.get("page"),
        per_page=setting("INSTANCES_PER_PAGE"),
    )
    context = {
        "page": page,
        "rows": rows,
        "polling": selectors.any_in_transition(row.instance for row in rows),
        "can_manage": request.membership.can("instances.manage"),
        "has_quota": bool(rows)
        or quota_selectors.quota_any_for_organization(organization=request.organization),
    }
    template = "instances/list.html#table" if request.htmx else "instances/list.html"
    return render(request, template, context)


@organization_view("instances.view")
def instance_detail(request: OrganizationRequest, pk: int) -> HttpResponse:
    instance, hourly = selectors.instance_priced_for_member(membership=request.membership, pk=pk)
    context = {
        "instance": instance,
        "events": selectors.instance_timeline(instance=instance),
        "actions": lifecycle.allowed_actions(instance.state),
        "can_manage": request.membership.can("instances.manage"),
        "can_manage_budget": request.membership.can("billing.manage"),
        "cost": selectors.instance_cost_so_far(instance=instance, hourly_price=hourly),
        "volumes": selectors.instance_volume_list(instance=instance),
        "hourly": hourly,
    }
    template = "instances/detail.html#live" if request.htmx else "instances/detail.html"
    return render(request, template, context)


@organization_view("instances.manage")  # tenant and role first: an outsider's GET is a 404
@require_POST
def instance_action(request: OrganizationRequest, pk: int, action: str) -> HttpResponse:
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


@organization_view("instances.manage")  # tenant and role first: an outsider's GET is a 404
@require_POST
def instance_max_price(request: OrganizationRequest, pk: int) -> HttpResponse:
    """Change a preemptible instance's max price (raising it cancels a price reclaim)."""
    instance = selectors.instance_get_for_member(membership=request.membership, pk=pk)
    try:
        changed = services.instance_bid_change(
            membership=request.membership,
            instance=instance,
            max_price_per_hour=request.POST.get("max_price_per_hour", "").strip() or None,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        bid = changed.max_price_per_hour
        shown = format_price(bid, settings.CURRENCY) if bid is not None else "the on-demand price"
        messages.success(request, f"The max price of {instance.name} is now {shown}.")
    url = reverse("instances:detail", args=[request.organization.slug, instance.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _initial_from(request: OrganizationRequest, options: selectors.LaunchOptions) -> dict:
    """Launch again what an earlier instance was (the interrupted e-mail links here), or the
    offer of `?instance_type=&region=` (a capacity alert's e-mail)."""
    source_id = request.GET.get("from", "")
    if not source_id:
        # A capacity alert's e-mail links here with the offer it was about.
        return {
            field: request.GET[field][:64]
            for field in ("instance_type", "region")
            if request.GET.get(field)
        }
    if not re.fullmatch(r"[0-9]{1,18}", source_id):  # "²".isdigit(); 19 digits overflow bigint
        raise BadRequest("The instance to launch again is not an instance number.")
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
def instance_launch(request: OrganizationRequest) -> HttpResponse:
    options = selectors.launch_options(membership=request.membership)
    form_options = {
        "regions": options.regions,
        "images": options.images,
        "keys": options.keys,
        "volumes": options.volumes,
    }
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
                    max_price_per_hour=data["max_price_per_hour"],
                    volume_ids=data["volumes"],
                )
            except QuotaExceeded as error:
                form.add_error(None, error.message)
                quota_request_url = error.request_url
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                # No flash message: the page says "Launching…" while it is, and not after.
                return redirect("instances:detail", org=request.organization.slug, pk=instance.pk)
        status = 400
    elif request.htmx:
        # The form changed: show the summary for what is chosen now.
        form = LaunchForm(request.GET, **form_options)
        form.is_valid()
    else:
        initial = _initial_from(request, options)
        # "Launch with this volume" on a volume's page: its region, the volume ticked.
        chosen = next((v for v in options.volumes if str(v.pk) == request.GET.get("volume")), None)
        if chosen is not None:
            initial.update(region=chosen.region.code, volumes=[str(chosen.pk)])
        if len(options.keys) == 1 and not initial.get("ssh_keys"):
            initial["ssh_keys"] = [str(options.keys[0].pk)]  # the only key: chosen already
        form = LaunchForm(initial=initial, **form_options)
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
        summary["quota_machines"] = quota_free // gpus
        # What both allow, in machines: never "quota left 8" beside "0 free" without saying so.
        summary["launchable"] = (
            None if place.free is None else max(0, min(place.free, quota_free // gpus))
        )
        summary["quota_short"] = quota_free < gpus
        summary["no_capacity"] = place.free is not None and place.free < 1
        summary.update(_spot(offer.instance_type, place.region, preemptible))
    return summary


def _spot(instance_type, region, preemptible: bool) -> dict:
    """The offer's spot price now, its 24-hour range and chart (two queries)."""
    now = timezone.now()
    since = now - timedelta(hours=24)
    rows = list(
        spot_price_history(
            region_id=region.pk, instance_type_id=instance_type.pk, since=since, until=now
        )
    )
    current = rows[-1] if rows and rows[-1].valid_until is None else None
    if current is None:
        return {}
    found: dict = {
        "spot": current.price,
        "spot_low": min(row.price for row in rows),
        "spot_high": max(row.price for row in rows),
        "spot_chart": price_chart(rows, since=since, until=now, currency=settings.CURRENCY),
    }
    if preemptible:
        found["hourly"] = current.price
    return found
