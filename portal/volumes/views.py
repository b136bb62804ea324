"""Volume pages. Thin: scope through selectors, change through services, render."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.quotas.services import StorageQuotaExceeded
from portal.volumes import selectors, services
from portal.volumes.forms import VolumeCreateForm, VolumeDeleteForm, VolumeResizeForm
from portal.volumes.models import LIVE_STATES, State
from portal.web.forms import form_add_application_error


@organization_view("volumes.view")
def volume_list(request: OrganizationRequest) -> HttpResponse:
    organization = request.organization
    volumes = list(selectors.volume_list_for_organization(organization=organization))
    return render(
        request,
        "volumes/list.html",
        {
            "volumes": volumes,
            "storage": [
                use
                for use in selectors.storage_use_for_organization(organization=organization)
                if use.limit_gb or use.used_gb
            ],
            "can_manage": request.membership.can("volumes.manage"),
            "polling": any(v.state in (State.CREATING, State.DELETING) for v in volumes),
        },
    )


@require_http_methods(["GET", "POST"])
@organization_view("volumes.manage")
def volume_create(request: OrganizationRequest) -> HttpResponse:
    form = VolumeCreateForm(
        request.POST or None, initial={"region": request.GET.get("region"), "size_gb": 100}
    )
    quota_request_url = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                volume = services.volume_create(
                    membership=request.membership,
                    region=data["region"],
                    name=data["name"],
                    size_gb=data["size_gb"],
                )
            except StorageQuotaExceeded as error:
                form.add_error("size_gb", error.message)
                quota_request_url = error.request_url
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(
                    request, f"Creating {volume.name}: machines will see it at {volume.mount_path}."
                )
                return redirect("volumes:detail", org=request.organization.slug, pk=volume.pk)
        status = 400
    return render(
        request,
        "volumes/create.html",
        {
            "form": form,
            "quota_request_url": quota_request_url,
            "storage": selectors.storage_use_for_organization(organization=request.organization),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@organization_view("volumes.view")
def volume_detail(request: OrganizationRequest, pk: int) -> HttpResponse:
    volume = selectors.volume_get_for_organization(organization=request.organization, pk=pk)
    can_manage = request.membership.can("volumes.manage")
    form = VolumeResizeForm(
        request.POST if request.method == "POST" else None,
        initial={"size_gb": volume.size_gb},
    )
    quota_request_url = None
    status = 200
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Your role in this organization cannot resize volumes.")
            return redirect("volumes:detail", org=request.organization.slug, pk=volume.pk)
        if form.is_valid():
            try:
                services.volume_resize(
                    membership=request.membership,
                    volume=volume,
                    size_gb=form.cleaned_data["size_gb"],
                )
            except StorageQuotaExceeded as error:
                form.add_error("size_gb", error.message)
                quota_request_url = error.request_url
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(
                    request, f"{volume.name} grows to {form.cleaned_data['size_gb']} GB."
                )
                return redirect("volumes:detail", org=request.organization.slug, pk=volume.pk)
        status = 400
    attachments = list(selectors.volume_attachment_list_for_volume(volume=volume))
    return render(
        request,
        "volumes/detail.html",
        {
            "volume": volume,
            "form": form,
            "quota_request_url": quota_request_url,
            "attachments": attachments,
            "attached": [a for a in attachments if a.active],
            "events": selectors.volume_event_list_for_volume(volume=volume)[:50],
            "can_manage": can_manage,
            "is_live": volume.state in LIVE_STATES,
            "polling": volume.state in (State.CREATING, State.DELETING),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@organization_view("volumes.manage")
def volume_delete(request: OrganizationRequest, pk: int) -> HttpResponse:
    """Ask for the typed name, then delete. Refused while attached (the page says so)."""
    volume = selectors.volume_get_for_organization(organization=request.organization, pk=pk)
    form = VolumeDeleteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.volume_delete(
                    membership=request.membership,
                    volume=volume,
                    confirm_name=form.cleaned_data["confirm_name"],
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(request, f"Deleting {volume.name} and its data.")
                return redirect("volumes:list", org=request.organization.slug)
        status = 400
    attached = services.volume_active_attachments(volume=volume)
    return render(
        request,
        "volumes/delete.html",
        {"volume": volume, "form": form, "attached": attached},
        status=status,
    )
