"""The e-mails of the quota workflow, one builder per kind (see portal.notifications.registry)."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.registry import Email, email_kind
from portal.quotas.models import QuotaRequest, QuotaRequestMessage, QuotaRequestState
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


@email_kind("quota_request_submitted")
def quota_request_submitted(*, quota_request_id: int) -> list[Email]:
    """To operator staff: a new request to review (or one a rule already approved)."""
    quota_request = _request(quota_request_id)
    return [
        Email(
            template="quota_request_submitted",
            to=[settings.OPERATOR_EMAIL],
            context={
                "quota_request": quota_request,
                "organization": quota_request.organization,
                "url": admin_url(quota_request),
            },
        )
    ]


@email_kind("quota_request_answered")
def quota_request_answered(*, message_id: int) -> list[Email]:
    """To operator staff: the customer answered a question; the request is back in the queue."""
    answer = QuotaRequestMessage.objects.select_related("user").get(pk=message_id)
    quota_request = _request(answer.quota_request_id)
    return [
        Email(
            template="quota_request_answered",
            to=[settings.OPERATOR_EMAIL],
            context={
                "quota_request": quota_request,
                "organization": quota_request.organization,
                "answer": answer,
                "url": admin_url(quota_request),
            },
        )
    ]


@email_kind("quota_request_decided", category="quotas")
def quota_request_decided(*, message_id: int) -> list[Email]:
    """To the organization's owners and admins: a decision, or a question from staff."""
    step = QuotaRequestMessage.objects.select_related("rule").get(pk=message_id)
    quota_request = _request(step.quota_request_id)
    return [
        Email(
            template="quota_request_decided",
            to=quota_notification_recipients(organization=quota_request.organization),
            context={
                "quota_request": quota_request,
                "organization": quota_request.organization,
                "step": step,
                "state": step.state,
                "states": QuotaRequestState,
                "url": customer_url(quota_request),
                "quotas_url": settings.SITE_URL
                + reverse("quotas:quotas", args=[quota_request.organization.slug]),
            },
        )
    ]
