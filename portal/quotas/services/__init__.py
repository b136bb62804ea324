"""Writes for quotas: limits and their audit, requests and decisions, reserving GPUs for launches.

Lock order, to keep concurrent writers from deadlocking: a quota request row first, then the
quota row. Reserving and releasing lock only the quota row.

The package: `checks` (errors and input checks), `limits` (limits, reserving GPUs and
storage) and `requests` (requests and decisions).
"""

from portal.quotas.services.checks import (
    JUSTIFICATION_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    Decision,
    QuotaExceeded,
    StorageQuotaExceeded,
    check_limit_number,
)
from portal.quotas.services.limits import (
    quota_apply_defaults,
    quota_limit_set,
    quota_release,
    quota_reserve,
    quota_storage_release,
    quota_storage_reserve,
)
from portal.quotas.services.requests import (
    decision_validate,
    quota_request_answer,
    quota_request_decide,
    quota_request_submit,
    quota_request_withdraw,
)

__all__ = [
    "Decision",
    "JUSTIFICATION_MAX_LENGTH",
    "MESSAGE_MAX_LENGTH",
    "QuotaExceeded",
    "StorageQuotaExceeded",
    "check_limit_number",
    "decision_validate",
    "quota_apply_defaults",
    "quota_limit_set",
    "quota_release",
    "quota_request_answer",
    "quota_request_decide",
    "quota_request_submit",
    "quota_request_withdraw",
    "quota_reserve",
    "quota_storage_release",
    "quota_storage_reserve",
]
