"""Pages of single sign-on: the organization's SSO settings (owners), "Sign in with SSO", and
the OpenID Connect callback (allauth's, with strict ID token checks)."""

from __future__ import annotations

from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.sso import selectors, services
from portal.sso.adapter import StrictOIDCAdapter
from portal.sso.forms import DomainClaimForm, IdentityProviderForm, PolicyForm, SsoStartForm
from portal.sso.models import provider_id_for
from portal.web.forms import form_add_application_error
from portal.web.middleware import CSP


def _callback_url(provider_id: str) -> str:
    path = reverse("openid_connect_callback", kwargs={"provider_id": provider_id})
    return settings.SITE_URL + path


def _settings_page(
    request: OrganizationRequest, *, provider_form=None, claim_form=None, status=200
):
    organization = request.organization
    provider = selectors.identity_provider_get_for_organization(organization=organization)
    claims = list(selectors.domain_claim_list_for_organization(organization=organization))
    if provider_form is None:
        initial = (
            {"name": provider.name, "issuer": provider.issuer, "client_id": provider.app.client_id}
            if provider
            else {}
        )
        provider_form = IdentityProviderForm(initial=initial)
    policy_form = PolicyForm(
        initial={
            "default_role": provider.default_role if provider else "member",
            "required": bool(provider and provider.required),
        }
    )
    signed_in_through = bool(
        provider
        and SocialAccount.objects.filter(user=request.user, provider=provider.provider_id).exists()
    )
    return render(
        request,
        "sso/settings.html",
        {
            "provider": provider,
            "claims": claims,
            "has_verified_domain": any(c.state == "verified" for c in claims),
            "provider_form": provider_form,
            "claim_form": claim_form or DomainClaimForm(),
            "policy_form": policy_form,
            "callback_url": _callback_url(provider_id_for(organization)),
            "signed_in_through": signed_in_through,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@organization_view("members.manage")
def sso_settings(request: OrganizationRequest) -> HttpResponse:
    """Owners: the identity provider, the domains, the policy. One form per POST (`action`)."""
    if request.method == "GET":
        return _settings_page(request)
    action = request.POST.get("action")
    membership = request.membership
    org = request.organization.slug
    if action == "provider":
        form = IdentityProviderForm(request.POST)
        if form.is_valid():
            try:
                provider = services.identity_provider_save(
                    membership=membership, request=request, **form.cleaned_data
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(
                    request,
                    f"Saved. {provider.name} answered with a valid discovery document.",
                )
                return redirect("sso:configure", org=org)
        return _settings_page(request, provider_form=form, status=400)
    if action == "claim":
        claim_form = DomainClaimForm(request.POST)
        if claim_form.is_valid():
            try:
                claim = services.domain_claim_create(
                    membership=membership, domain=claim_form.cleaned_data["domain"], request=request
                )
            except ApplicationError as error:
                form_add_application_error(claim_form, error)
            else:
                messages.success(
                    request,
                    f"Claimed {claim.domain}. The operator verifies it; you will see it "
                    "here as verified.",
                )
                return redirect("sso:configure", org=org)
        return _settings_page(request, claim_form=claim_form, status=400)
    if action == "policy":
        policy_form = PolicyForm(request.POST)
        if policy_form.is_valid():
            try:
                services.sso_policy_set(
                    membership=membership, request=request, **policy_form.cleaned_data
                )
            except ApplicationError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, "The sign-in policy is saved.")
        else:
            messages.error(request, "Choose one of the listed roles.")
        return redirect("sso:configure", org=org)
    raise Http404("No such action")


@require_POST
@organization_view("members.manage")
def domain_claim_remove(request: OrganizationRequest, pk: int) -> HttpResponse:
    claim = (
        selectors.domain_claim_list_for_organization(organization=request.organization)
        .filter(pk=pk)
        .first()
    )
    if claim is None:
        raise Http404("No such domain claim")
    services.domain_claim_remove(membership=request.membership, claim=claim, request=request)
    messages.success(request, f"{claim.domain} is no longer claimed.")
    return redirect("sso:configure", org=request.organization.slug)


@require_http_methods(["GET", "POST"])
@organization_view("members.manage")
def identity_provider_remove(request: OrganizationRequest) -> HttpResponse:
    provider = selectors.identity_provider_get_for_organization(organization=request.organization)
    if provider is None:
        raise Http404("No identity provider")
    if request.method == "POST":
        services.identity_provider_remove(membership=request.membership, request=request)
        messages.success(request, f"{provider.name} is removed; members sign in with passwords.")
        return redirect("sso:configure", org=request.organization.slug)
    return render(request, "sso/remove.html", {"provider": provider})


@require_http_methods(["GET", "POST"])
def sso_start(request: HttpRequest) -> HttpResponse:
    """ "Sign in with SSO": the work e-mail's domain says which organization's provider; the
    next page says where the person is going and sends them there (allauth's login, a POST)."""
    form = SsoStartForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        provider = selectors.provider_for_login(email=form.cleaned_data["email"])
        if provider is not None:
            return _continue_page(request, provider)
        form.add_error(
            "email",
            "No organization on Backfill signs in with single sign-on for this address. "
            "Sign in with your password instead.",
        )
    return render(request, "sso/start.html", {"form": form}, status=400 if form.errors else 200)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _continue_page(request: HttpRequest, provider) -> HttpResponse:
    response = render(
        request,
        "sso/continue.html",
        {
            "provider": provider,
            "provider_host": urlsplit(provider.authorization_endpoint).hostname,
            "next": reverse("dashboard_org", args=[provider.organization.slug]),
        },
    )
    # Its form goes to allauth's login, which redirects to the provider: the policy of this
    # page (the one the form is on) must allow the provider's origin as a form target.
    response["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {_origin(provider.authorization_endpoint)}"
    )
    return response


def oidc_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """allauth's OpenID Connect callback with the strict adapter (portal/sso/adapter.py)."""
    try:
        view = OAuth2CallbackView.adapter_view(StrictOIDCAdapter(request, provider_id))
        return view(request)
    except SocialApp.DoesNotExist:
        raise Http404("No such identity provider") from None
