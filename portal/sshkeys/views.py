from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from portal.lib.errors import ApplicationError
from portal.lib.sshkey import PRIVATE_KEY_WARNING
from portal.orgs.decorators import organization_view
from portal.sshkeys import selectors, services
from portal.sshkeys.forms import SshKeyForm
from portal.sshkeys.models import manages_all_keys
from portal.web.forms import form_add_application_error


# A private key pasted by mistake stays out of error reports.
@sensitive_post_parameters("public_key")
@require_http_methods(["GET", "POST"])
@organization_view("instances.manage")
def sshkey_list(request: HttpRequest) -> HttpResponse:
    """The keys the member can use, and the form to add one (POSTed to this same page)."""
    membership = request.membership
    can_share = manages_all_keys(membership)
    form = SshKeyForm(request.POST or None, can_share=can_share)
    status, private_key_warning = 200, ""
    if request.method == "POST":
        if form.is_valid():
            try:
                key = services.sshkey_add(
                    membership=membership,
                    name=form.cleaned_data["name"],
                    public_key=form.cleaned_data["public_key"],
                    shared=form.cleaned_data.get("shared", False),
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                whose = "shared with the organization" if key.is_shared else "personal key"
                messages.success(request, f"Added “{key.name}” ({whose}).")
                # The form posts to #add-key, so that errors are in view; the message is on top.
                list_url = reverse("sshkeys:list", args=[request.organization.slug])
                return redirect(f"{list_url}#content")
        if form.holds_private_key:
            form.forget_public_key()
            form.errors["public_key"] = form.error_class(
                ["Paste the public key here: the .pub file, not the private key."]
            )
            private_key_warning = PRIVATE_KEY_WARNING
        status = 400
    keys = list(selectors.sshkey_list_for_member(membership=membership))
    return render(
        request,
        "sshkeys/list.html",
        {
            "keys": keys,
            "form": form,
            "can_share": can_share,
            "private_key_warning": private_key_warning,
            "deletable": {key.pk for key in keys if key.can_be_deleted_by(membership)},
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@organization_view("instances.manage")
def sshkey_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask, then delete. 404 for a key the member cannot see, 403 for one they cannot delete."""
    membership = request.membership
    key = selectors.sshkey_get_for_member(membership=membership, pk=pk)
    if not key.can_be_deleted_by(membership):
        raise PermissionDenied("You can delete only your own personal keys.")
    if request.method == "POST":
        try:
            services.sshkey_delete(membership=membership, key=key)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Deleted “{key.name}”.")
        return redirect("sshkeys:list", org=request.organization.slug)
    return render(request, "sshkeys/delete.html", {"key": key})
