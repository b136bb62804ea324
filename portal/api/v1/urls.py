"""/api/v1/: every resource is the token's organization's; there is no organization in the URL."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.v1 import (
    audit,
    billing,
    catalog,
    instances,
    organization,
    quotas,
    reservations,
    sshkeys,
    token,
    tokens,
    webhooks,
)

app_name = "api_v1"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:api_v1:schema"), name="docs"),
    path("token/", token.TokenInfo.as_view(), name="token"),
    path("instance-types/", catalog.InstanceTypeList.as_view(), name="instance_types"),
    path("regions/", catalog.RegionList.as_view(), name="regions"),
    path("images/", catalog.ImageList.as_view(), name="images"),
    path("availability/", catalog.Availability.as_view(), name="availability"),
    path("ssh-keys/", sshkeys.SshKeyList.as_view(), name="ssh_keys"),
    path("ssh-keys/<int:pk>/", sshkeys.SshKeyDetail.as_view(), name="ssh_key"),
    path("instances/", instances.InstanceList.as_view(), name="instances"),
    path("instances/<int:pk>/", instances.InstanceDetail.as_view(), name="instance"),
    path(
        "instances/<int:pk>/events/",
        instances.InstanceEvents.as_view(),
        name="instance_events",
    ),
    path("instances/<int:pk>/start/", instances.InstanceStart.as_view(), name="instance_start"),
    path("instances/<int:pk>/stop/", instances.InstanceStop.as_view(), name="instance_stop"),
    path("instances/<int:pk>/reboot/", instances.InstanceReboot.as_view(), name="instance_reboot"),
    path(
        "instances/<int:pk>/terminate/",
        instances.InstanceTerminate.as_view(),
        name="instance_terminate",
    ),
    path("quotas/", quotas.QuotaList.as_view(), name="quotas"),
    path("quota-requests/", quotas.QuotaRequestList.as_view(), name="quota_requests"),
    path("quota-requests/<int:pk>/", quotas.QuotaRequestDetail.as_view(), name="quota_request"),
    path(
        "quota-requests/<int:pk>/withdraw/",
        quotas.QuotaRequestWithdraw.as_view(),
        name="quota_request_withdraw",
    ),
    path(
        "quota-requests/<int:pk>/answer/",
        quotas.QuotaRequestAnswer.as_view(),
        name="quota_request_answer",
    ),
    path("usage/", billing.Usage.as_view(), name="usage"),
    path("usage/csv/", billing.UsageExport.as_view(), name="usage_csv"),
    path("invoices/", billing.InvoiceList.as_view(), name="invoices"),
    path("invoices/<int:pk>/", billing.InvoiceDetail.as_view(), name="invoice"),
    path("invoices/<int:pk>/pdf/", billing.InvoicePdf.as_view(), name="invoice_pdf"),
    path("invoices/<int:pk>/csv/", billing.InvoiceCsv.as_view(), name="invoice_csv"),
    path("budget/", billing.BudgetDetail.as_view(), name="budget"),
    path("price-history/", catalog.PriceHistory.as_view(), name="price_history"),
    path("organization/", organization.OrganizationDetail.as_view(), name="organization"),
    path("membership/", organization.MembershipSelf.as_view(), name="membership"),
    path("members/", organization.MemberList.as_view(), name="members"),
    path("members/<int:pk>/", organization.MemberDetail.as_view(), name="member"),
    path("invitations/", organization.InvitationList.as_view(), name="invitations"),
    path("invitations/<int:pk>/", organization.InvitationDetail.as_view(), name="invitation"),
    path(
        "invitations/<int:pk>/resend/",
        organization.InvitationResend.as_view(),
        name="invitation_resend",
    ),
    path(
        "invitations/<int:pk>/revoke/",
        organization.InvitationRevoke.as_view(),
        name="invitation_revoke",
    ),
    path("audit-log/", audit.AuditLog.as_view(), name="audit_log"),
    path("tokens/", tokens.ApiTokenList.as_view(), name="tokens"),
    path("tokens/<int:pk>/", tokens.ApiTokenDetail.as_view(), name="token_detail"),
    path("tokens/<int:pk>/revoke/", tokens.ApiTokenRevoke.as_view(), name="token_revoke"),
    path("webhooks/", webhooks.WebhookEndpointList.as_view(), name="webhooks"),
    path("webhooks/<int:pk>/", webhooks.WebhookEndpointDetail.as_view(), name="webhook"),
    path("webhooks/<int:pk>/test/", webhooks.WebhookEndpointTest.as_view(), name="webhook_test"),
    path(
        "webhooks/<int:pk>/roll-secret/",
        webhooks.WebhookEndpointRollSecret.as_view(),
        name="webhook_roll_secret",
    ),
    path(
        "webhooks/<int:pk>/deliveries/",
        webhooks.WebhookDeliveryList.as_view(),
        name="webhook_deliveries",
    ),
    path("reservations/", reservations.ReservationList.as_view(), name="reservations"),
    path("reservations/<int:pk>/", reservations.ReservationDetail.as_view(), name="reservation"),
    path(
        "reservation-requests/",
        reservations.ReservationRequestList.as_view(),
        name="reservation_requests",
    ),
    path(
        "reservation-requests/<int:pk>/",
        reservations.ReservationRequestDetail.as_view(),
        name="reservation_request",
    ),
    path(
        "reservation-requests/<int:pk>/accept/",
        reservations.ReservationRequestAccept.as_view(),
        name="reservation_request_accept",
    ),
    path(
        "reservation-requests/<int:pk>/decline/",
        reservations.ReservationRequestDecline.as_view(),
        name="reservation_request_decline",
    ),
]
