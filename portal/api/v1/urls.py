"""/api/v1/: every resource is the token's organization's; there is no organization in the URL."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.v1 import billing, catalog, instances, quotas, sshkeys, token

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
    path("invoices/", billing.InvoiceList.as_view(), name="invoices"),
    path("invoices/<int:pk>/", billing.InvoiceDetail.as_view(), name="invoice"),
]
