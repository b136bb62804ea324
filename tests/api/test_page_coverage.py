"""Everything a customer does in the browser can be done through the API.

The customer pages are read from the URLconf (every URL under /o/<org>/); each must be listed
here with the API operations that do what its actions do, or as a known gap, or with the reason
it is browser-only. A new page without an entry fails this test, and so does an entry naming an
operation the OpenAPI document does not have. The other way round, every operation belongs to
a page or is listed as API-only.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

# URL name -> {what the page lets one do: the operationIds that do it}.
PAGES: dict[str, dict[str, list[str]]] = {
    "dashboard_org": {
        "see the organization": ["organization_get"],
        "see instances and spend": ["instances_list", "usage_get"],
    },
    "orgs:settings": {
        "see the settings": ["organization_get"],
        "rename the organization": ["organization_update"],
    },
    "orgs:leave": {"leave the organization": ["membership_leave", "membership_get"]},
    "orgs:members": {
        "list members": ["members_list", "members_get"],
        "list open invitations": ["invitations_list", "invitations_get"],
    },
    "orgs:audit": {"read and filter the audit log": ["audit_log_list"]},
    "orgs:audit_csv": {"export the audit log as CSV": ["audit_log_list"]},
    "orgs:invite": {"invite someone": ["invitations_create"]},
    "orgs:member_role": {"change a role": ["members_update"]},
    "orgs:member_remove": {"remove a member": ["members_remove"]},
    "orgs:invitation_resend": {"resend an invitation": ["invitations_resend"]},
    "orgs:invitation_revoke": {"revoke an invitation": ["invitations_revoke"]},
    "catalog:catalog": {
        "see what can be launched, where, at which price": [
            "instance_types_list",
            "regions_list",
            "images_list",
        ],
        "see free capacity": ["availability_get"],
        "see past and announced prices": ["price_history_list"],
    },
    "quotas:quotas": {
        "see limits and use": ["quotas_list", "storage_quotas_list"],
        "list requests": ["quota_requests_list"],
    },
    "quotas:quota_request_new": {"ask for a limit": ["quota_requests_create"]},
    "quotas:quota_request_detail": {"read a request": ["quota_requests_get"]},
    "quotas:quota_request_answer": {"answer the operator": ["quota_requests_answer"]},
    "quotas:quota_request_withdraw": {"withdraw a request": ["quota_requests_withdraw"]},
    "sshkeys:list": {
        "list keys": ["ssh_keys_list", "ssh_keys_get"],
        "add a key": ["ssh_keys_create"],
    },
    "sshkeys:delete": {"delete a key": ["ssh_keys_delete"]},
    "instances:list": {"list instances": ["instances_list"]},
    "instances:launch": {
        "launch": ["instances_launch"],
        "see the spot price now, its 24-hour range and chart": [
            "prices_list",
            "prices_history_list",
        ],
    },
    "instances:detail": {"see an instance and its timeline": ["instances_get", "instances_events"]},
    "instances:max_price": {
        "change a preemptible instance's max price": ["instances_set_max_price"]
    },
    "market:alerts": {
        "list capacity alerts": ["capacity_alerts_list", "capacity_alerts_get"],
        "ask to be told when capacity is free": ["capacity_alerts_create"],
    },
    "market:alert_remove": {"remove a capacity alert": ["capacity_alerts_delete"]},
    "instances:action": {
        "start, stop, reboot, terminate": [
            "instances_start",
            "instances_stop",
            "instances_reboot",
            "instances_terminate",
        ]
    },
    "volumes:list": {"list volumes and the storage quota": ["volumes_list", "storage_quotas_list"]},
    "volumes:create": {"create a volume": ["volumes_create"]},
    "volumes:detail": {
        "see a volume, where it is attached and its timeline": ["volumes_get", "volumes_events"],
        "grow it": ["volumes_resize"],
    },
    "volumes:delete": {"delete it with its name typed again": ["volumes_delete"]},
    "clusters:list": {"list clusters": ["clusters_list"]},
    "clusters:launch": {"launch a cluster": ["clusters_launch"]},
    "clusters:detail": {
        "see a cluster, its nodes and its timeline": ["clusters_get", "clusters_events"]
    },
    "clusters:action": {
        "start, stop, terminate": ["clusters_start", "clusters_stop", "clusters_terminate"]
    },
    "billing:overview": {"see the month's usage and spend": ["usage_get"]},
    "billing:usage_csv": {"download usage as CSV": ["usage_export"]},
    "billing:budget": {
        "see the budget and alerts": ["budget_get"],
        "set the budget": ["budget_set"],
        "remove the budget": ["budget_delete"],
    },
    "billing:invoices": {"list invoices": ["invoices_list"]},
    "billing:invoice": {"read an invoice": ["invoices_get"]},
    "billing:invoice_pdf": {"download the PDF": ["invoices_pdf"]},
    "billing:invoice_csv": {"download the CSV": ["invoices_csv"]},
    "api:page": {"list tokens": ["tokens_list", "tokens_get"]},
    "api:token_revoke": {"revoke a token": ["tokens_revoke"]},
    "webhooks:list": {"list endpoints": ["webhooks_list"], "add an endpoint": ["webhooks_create"]},
    "webhooks:detail": {
        "see an endpoint and its deliveries": ["webhooks_get", "webhooks_deliveries"]
    },
    "webhooks:edit": {"change events, pause": ["webhooks_update"]},
    "webhooks:test": {"send a test event": ["webhooks_test"]},
    "webhooks:roll": {"roll the secret": ["webhooks_roll_secret"]},
    "webhooks:delete": {"delete an endpoint": ["webhooks_delete"]},
    "reservations:list": {
        "list reservations": ["reservations_list", "reservations_get"],
        "list requests": ["reservation_requests_list"],
        "ask for reserved capacity": ["reservation_requests_create"],
    },
    "reservations:request_detail": {"read a request and its quote": ["reservation_requests_get"]},
    "reservations:request_answer": {
        "accept or decline the quote": [
            "reservation_requests_accept",
            "reservation_requests_decline",
        ]
    },
}

# Actions of listed pages that the API leaves to the browser on purpose, and why.
BROWSER_ONLY: dict[str, dict[str, str]] = {
    "api:page": {
        "create a token": "a token never mints another token: a leaked token could otherwise "
        "outlive its revocation; tokens are made by a person signed in (with two-factor where "
        "the organization requires it)",
    },
}

# Whole pages the API leaves to the browser on purpose, and why.
BROWSER_ONLY_PAGES: dict[str, str] = {
    "sso:configure": "configuring sign-in (the identity provider, domains, requiring SSO) is "
    "for an owner signed in to the console: a leaked token could otherwise send every "
    "member's sign-in to an identity provider of the attacker's",
    "sso:remove": "removing the identity provider changes how everyone signs in (as above)",
    "sso:domain_remove": "domain claims decide who joins through SSO (as above)",
    "orgs:two_factor": "requiring two-factor of every member is for an owner signed in with "
    "two-factor: a leaked token could otherwise turn the requirement off",
}

# URL namespaces of pages being built by other issues whose API is not there yet. Their pages
# are accepted without operations until then; test_known_gaps_are_still_gaps fails as soon as
# operations for them appear, so that the entry is moved into PAGES.
KNOWN_GAPS: dict[str, str] = {}

# Operations with no page of their own.
API_ONLY = {
    "token_get": "who am I: the token, its organization and role (for scripts and the CLI)",
}


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield prefix + str(pattern.pattern), name


def customer_pages() -> dict[str, str]:
    """URL name -> route of every page of an organization."""
    return {
        name: route
        for route, name in _walk(get_resolver().url_patterns)
        if route.startswith("o/<slug:org>/")
    }


@pytest.fixture(scope="module")
def operation_ids() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        operation["operationId"]
        for path in schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _namespace(name: str) -> str:
    return name.split(":", 1)[0] if ":" in name else ""


def test_every_customer_page_is_listed():
    pages = customer_pages()
    assert len(pages) >= 40  # the walk found the URLconf

    unlisted = sorted(
        name
        for name in pages
        if name not in PAGES
        and name not in BROWSER_ONLY_PAGES
        and _namespace(name) not in KNOWN_GAPS
    )
    assert not unlisted, f"Pages without API operations listed here: {unlisted}"
    for name, reason in BROWSER_ONLY_PAGES.items():
        assert name not in PAGES and len(reason) > 40, name
    gone = sorted((set(PAGES) | set(BROWSER_ONLY_PAGES)) - set(pages))
    assert not gone, f"Listed pages that are no longer in the URLconf: {gone}"


def test_each_action_of_a_page_has_an_api_operation(operation_ids):
    missing = {
        f"{page}: {action}": [op for op in ops if op not in operation_ids]
        for page, actions in PAGES.items()
        for action, ops in actions.items()
        if not ops or any(op not in operation_ids for op in ops)
    }
    assert not missing, missing
    for page, actions in BROWSER_ONLY.items():
        assert page in PAGES, page
        for action, reason in actions.items():
            assert action not in PAGES[page] and len(reason) > 40


def test_every_operation_belongs_to_a_page_or_is_api_only(operation_ids):
    claimed = {op for actions in PAGES.values() for ops in actions.values() for op in ops}
    orphans = sorted(operation_ids - claimed - set(API_ONLY))
    assert not orphans, f"Operations no page lists (add them to a page or to API_ONLY): {orphans}"


def test_known_gaps_are_still_gaps(operation_ids):
    """When clusters, volumes or spot prices get API operations, move their pages into PAGES."""
    for area in KNOWN_GAPS:
        covered = sorted(op for op in operation_ids if op.startswith(area))
        assert not covered, f"{area} has operations {covered}: list its pages in PAGES"
