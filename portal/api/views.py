"""The API page of an organization: tokens (create, shown once; revoke) and curl examples."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.api import selectors, services
from portal.api.forms import ApiTokenForm
from portal.api.models import manages_all_tokens
from portal.catalog.models import Image
from portal.catalog.selectors import catalog_offers
from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.quotas.models import Kind, Quota
from portal.sshkeys.selectors import sshkey_list_for_member
from portal.web.forms import form_add_application_error


def _examples(request: OrganizationRequest) -> dict[str, object]:
    """Real codes of this catalog in the curl examples, so that they work as pasted: the first
    type and region the organization's on-demand quota has room for (else the first offered)."""
    offers = list(catalog_offers())
    free = {
        (q.region_id, q.gpu_model_id): q.free(Kind.ON_DEMAND)
        for q in Quota.objects.filter(organization=request.organization)
    }
    fitting = (
        (offer, region)
        for offer in offers
        for region in offer.regions
        if free.get((region.pk, offer.instance_type.gpu_model_id), 0)
        >= offer.instance_type.gpu_count
    )
    first = next(iter(offers), None)
    offer, region = next(fitting, (first, first.regions[0] if first and first.regions else None))
    image = Image.objects.filter(active=True).order_by("name").first()
    key = sshkey_list_for_member(membership=request.membership).first()
    return {
        "base_url": request.build_absolute_uri("/api/v1"),
        "instance_type": offer.instance_type.code if offer else "gpu_1x_h100",
        "region": region.code if region else "us-east-1",
        "image": image.code if image else "ubuntu-22.04-cuda-12.4",
        "ssh_key_id": key.pk if key else 1,
    }


@require_http_methods(["GET", "POST"])
@organization_view("org.view")
def api_page(request: OrganizationRequest) -> HttpResponse:
    membership = request.membership
    form = ApiTokenForm(request.POST or None, membership=membership)
    new_token: dict[str, object] | None = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                token, value = services.api_token_create(
                    membership=membership,
                    name=form.cleaned_data["name"],
                    expires_at=form.expires_at(),
                    request=request,
                    **form.token_arguments(),
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                # Rendered, not redirected: the value exists only in this response.
                form = ApiTokenForm(membership=membership)
                new_token = {"token": token, "value": value}
        if new_token is None:
            status = 400
    tokens = list(selectors.api_token_list_for_member(membership=membership))
    response = render(
        request,
        "api/page.html",
        {
            "form": form,
            "tokens": tokens,
            "new_token": new_token,
            "shows_owner": manages_all_tokens(membership),
            "examples": _examples(request),
        },
        status=status,
    )
    if new_token is not None:
        response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@organization_view("org.view")
def api_token_revoke(request: OrganizationRequest, pk: int) -> HttpResponse:
    """Ask, then revoke. 404 for a token the member cannot see (another member's, unless
    they are an owner or admin, or another organization's)."""
    membership = request.membership
    token = selectors.api_token_get_for_member(membership=membership, pk=pk)
    if request.method == "POST":
        try:
            services.api_token_revoke(membership=membership, token=token, request=request)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Revoked “{token.name}”. It no longer works.")
        return redirect("api:page", org=request.organization.slug)
    return render(request, "api/token_revoke.html", {"token": token})
