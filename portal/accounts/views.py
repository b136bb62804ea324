"""A person's own pages: the "send it again" button of the "check your inbox" page (allauth's
verification_sent), which e-mails to get and the time zone."""

from allauth.account.internal.flows.email_verification import (
    consume_email_verification_rate_limit,
    send_verification_email_to_address,
)
from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.adapter import VERIFICATION_PENDING_SESSION_KEY
from portal.accounts.forms import NotificationSettingsForm
from portal.accounts.http import AuthenticatedRequest
from portal.accounts.services import user_time_zone_set
from portal.lib.errors import ApplicationError
from portal.notifications.registry import CATEGORIES
from portal.notifications.services import email_categories_muted, email_preferences_set
from portal.web.forms import form_add_application_error


@require_POST
def verification_resend(request: HttpRequest) -> HttpResponse:
    """Mail the verification link again to the address this browser signed up (or tried to
    sign in) with. allauth's own rate limit applies: one mail per address every few minutes."""
    user_id = request.session.get(VERIFICATION_PENDING_SESSION_KEY)
    address = (
        EmailAddress.objects.filter(user_id=user_id, verified=False).order_by("-primary").first()
        if user_id
        else None
    )
    if address is None:
        messages.info(request, "There is no address waiting for confirmation here. Sign in.")
        return redirect("account_login")
    if not consume_email_verification_rate_limit(request, address.email, dry_run=True):
        messages.warning(
            request,
            f"We sent a link to {address.email} only a few minutes ago. It can take a moment: "
            "look in your spam folder too. You can ask for another one in three minutes.",
        )
    else:
        send_verification_email_to_address(request, address, signup=True)
    return redirect("account_email_verification_sent")


@login_required
def notification_settings(request: AuthenticatedRequest) -> HttpResponse:
    """Which e-mails come (security e-mail always does), and the time zone of times shown."""
    user = request.user
    initial = {
        "wanted": [
            category
            for category in CATEGORIES
            if category not in email_categories_muted(user_id=user.pk)
        ],
        "time_zone": user.time_zone or "UTC",
    }
    form = NotificationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                email_preferences_set(user_id=user.pk, wanted=form.cleaned_data["wanted"])
                user_time_zone_set(user=user, time_zone=form.cleaned_data["time_zone"])
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Saved. Your e-mail and time zone settings apply from now.")
            return redirect("account_notifications")
    return render(
        request,
        "account/notifications.html",
        {"form": form, "categories": CATEGORIES},
    )


@login_required
@require_POST
def time_zone_detect(request: AuthenticatedRequest) -> HttpResponse:
    """The browser's time zone, sent once by a small script while none is set; a time zone
    chosen on the notifications page is never overwritten."""
    user = request.user
    if not user.time_zone:
        try:
            user_time_zone_set(user=user, time_zone=request.POST.get("time_zone", ""))
        except ApplicationError as error:
            return HttpResponse(error.message, status=400)
    return HttpResponse(status=204)
