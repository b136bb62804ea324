import json
from collections.abc import Iterator
from datetime import UTC

from allauth.account.views import SignupView
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from portal.accounts.http import AuthenticatedRequest
from portal.audit import selectors as audit_selectors
from portal.audit.forms import AuditFilterForm
from portal.lib import csvsafe
from portal.lib.errors import ApplicationError
from portal.orgs import selectors, services
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.orgs.forms import InvitationForm, OrganizationForm, RoleForm
from portal.orgs.roles import ROLE_DESCRIPTIONS, Role, roles_assignable_by
from portal.orgs.signup import pending_invitation, remember_invitation
from portal.orgs.two_factor import user_has_two_factor
from portal.web.forms import form_add_application_error


def _members_url(request: OrganizationRequest) -> str:
    return reverse("orgs:members", args=[request.organization.slug])


@login_required
def organization_create(request: AuthenticatedRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                user=request.user, name=form.cleaned_data["name"], request=request
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, f"Created {organization.name}. You are its owner.")
            return redirect("dashboard_org", org=organization.slug)
    return render(request, "orgs/organization_create.html", {"form": form})


@organization_view("org.view")
def organization_settings(request: OrganizationRequest) -> HttpResponse:
    organization = request.organization
    can_rename = request.membership.can("org.rename")
    form = OrganizationForm(request.POST or None, initial={"name": organization.name})
    if request.method == "POST":
        if not can_rename:
            messages.error(request, "Only owners and admins can rename the organization.")
            return redirect("orgs:settings", org=organization.slug)
        if form.is_valid():
            try:
                services.organization_rename(
                    organization=organization,
                    name=form.cleaned_data["name"],
                    actor=request.membership,
                    request=request,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(request, "Organization renamed.")
                return redirect("orgs:settings", org=organization.slug)
    return render(
        request,
        "orgs/settings.html",
        {
            "form": form,
            "can_rename": can_rename,
            "can_require_two_factor": request.membership.can("members.manage"),
            "has_two_factor": user_has_two_factor(request.user),
        },
    )


@organization_view("members.manage")  # owners only; others get a 403, outsiders a 404
@require_POST
def organization_two_factor(request: OrganizationRequest) -> HttpResponse:
    """Require two-factor of every member, or stop requiring it (a section of the settings)."""
    required = request.POST.get("require") == "on"
    try:
        services.organization_require_two_factor(
            organization=request.organization,
            required=required,
            actor=request.membership,
            request=request,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            "Two-factor is now required of every member."
            if required
            else "Two-factor is no longer required.",
        )
    return redirect("orgs:settings", org=request.organization.slug)


@organization_view("members.view")
def member_list(request: OrganizationRequest) -> HttpResponse:
    actor = request.membership
    form = InvitationForm(actor_role=actor.role)
    return render(
        request,
        "orgs/members.html",
        _members_context(request, form),
    )


def _members_context(request: OrganizationRequest, form: InvitationForm) -> dict[str, object]:
    organization = request.organization
    return {
        "members": selectors.membership_list_for_organization(organization=organization),
        "invitations": selectors.invitation_list_open_for_organization(organization=organization),
        "invite_form": form,
        "role_choices": Role.choices,
        "assignable_roles": roles_assignable_by(request.membership.role),
        "role_descriptions": ROLE_DESCRIPTIONS,
    }


@organization_view("members.invite")
@require_POST
def invitation_create(request: OrganizationRequest) -> HttpResponse:
    actor = request.membership
    form = InvitationForm(request.POST, actor_role=actor.role)
    if form.is_valid():
        try:
            invitation, _token = services.invitation_create(
                actor=actor,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                request=request,
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(
                request,
                f"Invitation sent to {invitation.email} as {invitation.get_role_display()}.",
            )
            return redirect(_members_url(request))
    return render(request, "orgs/members.html", _members_context(request, form), status=400)


@organization_view("members.invite")
@require_POST
def invitation_resend(request: OrganizationRequest, pk: int) -> HttpResponse:
    invitation = selectors.invitation_get_for_organization(organization=request.organization, pk=pk)
    try:
        services.invitation_resend(actor=request.membership, invitation=invitation, request=request)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation sent again to {invitation.email}.")
    return redirect(_members_url(request))


@organization_view("members.invite")
@require_POST
def invitation_revoke(request: OrganizationRequest, pk: int) -> HttpResponse:
    invitation = selectors.invitation_get_for_organization(organization=request.organization, pk=pk)
    try:
        services.invitation_revoke(actor=request.membership, invitation=invitation, request=request)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect(_members_url(request))


@organization_view("members.manage")
@require_POST
def member_change_role(request: OrganizationRequest, pk: int) -> HttpResponse:
    membership = selectors.membership_get_for_organization(organization=request.organization, pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect(_members_url(request))
    try:
        services.membership_change_role(
            actor=request.membership,
            membership=membership,
            role=form.cleaned_data["role"],
            request=request,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display()}."
        )
    return redirect(_members_url(request))


@organization_view("members.manage")
def member_remove(request: OrganizationRequest, pk: int) -> HttpResponse:
    membership = selectors.membership_get_for_organization(organization=request.organization, pk=pk)
    if request.method == "POST":
        try:
            services.membership_remove(
                actor=request.membership, membership=membership, request=request
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, f"{membership.user.email} was removed from {request.organization}."
            )
        return redirect(_members_url(request))
    return render(request, "orgs/member_remove.html", {"target": membership})


@organization_view("org.view")
def organization_leave(request: OrganizationRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            services.membership_remove(
                actor=request.membership, membership=request.membership, request=request
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("orgs:settings", org=request.organization.slug)
        request.session.pop("current_org", None)
        messages.success(request, f"You left {request.organization}.")
        return redirect("dashboard")
    return render(request, "orgs/leave.html")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = selectors.invitation_get_by_token(token=token)
    problem = services.invitation_problem(invitation)
    if problem or invitation is None:
        request.session.pop("pending_invitation", None)
        return render(request, "orgs/invitation_unusable.html", {"problem": problem}, status=410)
    if not request.user.is_authenticated:
        # Remembered so that sign-up or login comes back here (see AccountAdapter), and
        # sign-up fills in the invited address (portal/orgs/signup.py).
        remember_invitation(request, token=token, invitation=invitation)
        return render(request, "orgs/invitation_accept.html", {"invitation": invitation})
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=request.user, request=request)
        except ApplicationError as error:
            messages.error(request, error.message)
            return render(
                request, "orgs/invitation_accept.html", {"invitation": invitation}, status=400
            )
        request.session.pop("pending_invitation", None)
        messages.success(
            request,
            f"Welcome to {membership.organization}. Your role is {membership.get_role_display()}.",
        )
        return redirect("dashboard_org", org=membership.organization.slug)
    return render(request, "orgs/invitation_accept.html", {"invitation": invitation})


AUDIT_PER_PAGE = 50


@organization_view("audit.view")  # tenant and role first: an outsider gets a 404 for any method
@require_GET
def audit_log(request: OrganizationRequest) -> HttpResponse:
    """The organization's audit log for owners and admins, newest first, filtered by GET."""
    form = AuditFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound else {}
    entries = audit_selectors.audit_entry_list_for_organization(
        organization=request.organization, **filters
    )
    page = Paginator(entries, AUDIT_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/list.html",
        {
            "form": form,
            "page": page,
            "entries": page.object_list,
            "filtered": any(filters.values()),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


AUDIT_CSV_COLUMNS = (
    "when (UTC)",
    "action",
    "action code",
    "actor",
    "actor kind",
    "target",
    "target type",
    "IP address",
    "details",
)


@organization_view("audit.view")
@require_GET
def audit_log_csv(request: OrganizationRequest) -> StreamingHttpResponse:
    """The audit log as the filters on the page select it, as a spreadsheet-safe CSV."""
    form = AuditFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound else {}
    entries = audit_selectors.audit_entry_list_for_organization(
        organization=request.organization, **filters
    )
    response = StreamingHttpResponse(
        csvsafe.stream(audit_csv_rows(entries)), content_type="text/csv; charset=utf-8"
    )
    filename = f"audit-{request.organization.slug}-{timezone.now():%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def audit_csv_rows(entries) -> Iterator[list]:
    yield list(AUDIT_CSV_COLUMNS)
    for entry in entries.iterator(chunk_size=500):
        yield [
            entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            entry.action_label,
            entry.action,
            entry.actor_display,
            entry.get_actor_kind_display(),
            entry.target_label,
            entry.target_type,
            entry.ip or "",
            json.dumps(entry.detail, sort_keys=True, ensure_ascii=False) if entry.detail else "",
        ]


class InvitationSignupView(SignupView):
    """allauth's sign-up; for someone holding an invitation, the form of a person joining."""

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        invitation = pending_invitation(self.request)
        if invitation is not None:
            form.initial["email"] = invitation.email
            email = form.fields["email"]
            email.initial = invitation.email
            email.disabled = True  # the posted value is ignored: the invited address it is
            email.help_text = "The invitation was sent to this address."
            form.fields.pop("organization_name", None)
        return form

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["invitation"] = pending_invitation(self.request)
        return context


signup = InvitationSignupView.as_view()
