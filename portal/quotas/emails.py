"""The e-mails of the quota workflow. Each takes ids: they run after the commit that caused them."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.mail import send_templated
from portal.quotas.models import QuotaRequest, QuotaRequestMessage, RequestState
from portal.quotas.selectors import quota_notification_recipients


def _request(pk: int) -> QuotaRequest:
    return QuotaRequest.objects.select_related(
        "organization", "region", "gpu_model", "created_by"
    ).get(pk=pk)


def customer_url(quota_request: QuotaRequest) -> str:
    return settings.SITE_URL + reverse(
        "quotas:quota_request_detail", args=[quota_request.organization.slug, quota_request.pk]
    )


def admin_url(quota_request: QuotaRequest) -> str:
    return settings.SITE_URL + reverse("admin:quotas_quotarequest_change", args=[quota_request.pk])


def send_quota_request_submitted(*, quota_request_id: int) -> None:
    """To operator staff: a new request to review (or one a rule already approved)."""
    quota_request = _request(quota_request_id)
    send_templated(
        template="quota_request_submitted",
        to=[settings.OPERATOR_EMAIL],
        context={
            "quota_request": quota_request,
            "organization": quota_request.organization,
            "url": admin_url(quota_request),
        },
    )


def send_quota_request_answered(*, message_id: int) -> None:
    """To operator staff: the customer answered a question; the request is back in the queue."""
    answer = QuotaRequestMessage.objects.select_related("user").get(pk=message_id)
    quota_request = _request(answer.request_id)
    send_templated(
        template="quota_request_answered",
        to=[settings.OPERATOR_EMAIL],
        context={
            "quota_request": quota_request,
            "organization": quota_request.organization,
            "answer": answer,
            "url": admin_url(quota_request),
        },
    )


def send_quota_request_decided(*, message_id: int) -> None:
    """To the organization's owners and admins: a decision, or a question from staff."""
    step = QuotaRequestMessage.objects.select_related("rule").get(pk=message_id)
    quota_request = _request(step.request_id)
    send_templated(
        template="quota_request_decided",
        to=quota_notification_recipients(organization=quota_request.organization),
        context={
            "quota_request": quota_request,
            "organization": quota_request.organization,
            "step": step,
            "state": step.state,
            "states": RequestState,
            "url": customer_url(quota_request),
            "quotas_url": settings.SITE_URL
            + reverse("quotas:quotas", args=[quota_request.organization.slug]),
        },
    )
