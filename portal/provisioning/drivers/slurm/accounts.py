"""Slurm accounts of organizations, and their GPU limits (GrpTRES): the driver's quota mirroring.

Through slurmrestd's `dbv0.0.38` API (slurmdbd), as the SlurmUser (an admin of the database),
with the driver's service token. sacctmgr would do the same but needs munge, slurm.conf and the
Slurm client on the portal's machines; the REST API needs only HTTP.

- `account_name(org_slug)`: `bf-<slug>` (the driver's account prefix), lower case.
- `ensure_account(org_slug)`: that account under the default account `backfill`, with an
  association for the Unix user the jobs run as, allowed QOS normal and low. Idempotent.
- `set_gpu_limits(org_slug, {model: limit})`: the account's whole GPU GrpTRES in one call (what
  `SlurmBackend.set_account_limits` does: slurmdbd replaces the account's whole TRES list on
  every change, so two read-then-write calls at once lose one update).
- `set_gpu_limit(org_slug, gpu_model, limit)`: GrpTRES `gres/gpu:<model>=<limit>` alone (None
  removes it); reads the others and writes them back, so not for concurrent use.
- `gpu_limits(org_slug)`: what Slurm holds now, `{model: limit}`.

A job that would take the account over its limit stays PENDING with reason AssocGrpGRES, which
the driver reports as "waiting for capacity (AssocGrpGRES)". Slurm's limit is per GPU model over
the whole cluster (every region's partition).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import InvalidResponse, PermanentError
from .client import DB_API, NOTHING_FOUND, has_code

if TYPE_CHECKING:
    from .backend import SlurmBackend

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


def account_name(org_slug: str, prefix: str) -> str:
    """The Slurm account of an organization: lower case, `<prefix><slug>`."""
    slug = org_slug.strip().lower()
    if not slug or not SLUG_RE.fullmatch(slug):
        raise PermanentError(f"{org_slug!r} cannot name a Slurm account")
    return f"{prefix}{slug}"


def ensure_account(org_slug: str, *, backend: SlurmBackend) -> str:
    """Make the organization's Slurm account (and its job user's association); its name."""
    account = backend.account_name(org_slug)
    existing = _associations(backend, account)
    users = {a.get("user") or "" for a in existing}
    if "" in users and backend.user in users:
        return account
    cluster = _cluster(backend)
    _db(
        backend,
        "POST",
        "/accounts",
        {
            "accounts": [
                {
                    "name": account,
                    "description": f"Backfill organization {org_slug}",
                    "organization": org_slug,
                }
            ]
        },
    )
    associations: list[dict[str, Any]] = []
    if "" not in users:
        # "user": "" is needed, or slurmrestd answers an error (and makes it anyway).
        associations.append(
            {
                "account": account,
                "cluster": cluster,
                "user": "",
                "parent_account": backend.default_account,
            }
        )
    if backend.user not in users:
        associations.append(
            {"account": account, "cluster": cluster, "user": backend.user, "qos": ["normal", "low"]}
        )
    _db(backend, "POST", "/associations", {"associations": associations})
    return account


def set_gpu_limits(
    org_slug: str, limits: Mapping[str, int | None], *, backend: SlurmBackend
) -> dict[str, int]:
    """Set the account's whole GPU GrpTRES at once: `{model: limit}`; a model not given (or
    given None) has no limit. One POST, no read-modify-write, so the last call wins whole
    (set_gpu_limit's read-then-write loses an update when two run at once). Models Slurm does
    not track are left out. Returns what was sent."""
    for limit in limits.values():
        _check_limit(limit)
    account = ensure_account(org_slug, backend=backend)
    tracked = tracked_gpu_models(backend=backend)
    wanted = {
        model.lower(): limit
        for model, limit in limits.items()
        if limit is not None and model.lower() in tracked
    }
    old = gpu_limits(org_slug, backend=backend)
    if wanted or old:
        _post_gpu_tres(
            backend, account, {model: wanted.get(model, -1) for model in set(wanted) | set(old)}
        )
    return wanted


def set_gpu_limit(
    org_slug: str, gpu_model: str, limit: int | None, *, backend: SlurmBackend
) -> None:
    """Set (or, with None, remove) the account's GrpTRES for one GPU model (reads the others
    and writes them all back: not for concurrent use; see set_gpu_limits)."""
    _check_limit(limit)
    account = ensure_account(org_slug, backend=backend)
    # The POST replaces the account's whole GrpTRES list: send every GPU limit it keeps.
    limits = {**gpu_limits(org_slug, backend=backend), gpu_model.lower(): limit}
    _post_gpu_tres(
        backend,
        account,
        {model: -1 if count is None else count for model, count in limits.items()},
    )


def gpu_limits(org_slug: str, *, backend: SlurmBackend) -> dict[str, int]:
    """The account's GPU limits in Slurm, `{model: limit}` (empty without account or limits)."""
    account = backend.account_name(org_slug)
    limits: dict[str, int] = {}
    for association in _associations(backend, account):
        if association.get("user"):
            continue
        total = ((association.get("max") or {}).get("tres") or {}).get("total") or []
        for item in total:
            name = str(item.get("name") or "")
            count = int(item.get("count", -1))
            if item.get("type") == "gres" and name.startswith("gpu:") and count >= 0:
                limits[name.removeprefix("gpu:")] = count
    return limits


def tracked_gpu_models(*, backend: SlurmBackend) -> set[str]:
    """GPU models Slurm tracks as TRES (`gres/gpu:<model>` in AccountingStorageTRES): the
    only ones a GrpTRES can name (any other makes slurmdbd refuse the whole list)."""
    answer = _db(backend, "GET", "/tres")
    return {
        str(item["name"]).removeprefix("gpu:")
        for item in (answer or {}).get("TRES") or []
        if isinstance(item, dict)
        and item.get("type") == "gres"
        and str(item.get("name") or "").startswith("gpu:")
    }


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise PermanentError(f"a GPU limit is a count of GPUs, not {limit!r}")


def _post_gpu_tres(backend: SlurmBackend, account: str, counts: dict[str, int]) -> None:
    """Write the account's whole GPU GrpTRES list, `{model: count}` (-1: no limit)."""
    tres = [
        {"type": "gres", "name": f"gpu:{model}", "count": count}
        for model, count in sorted(counts.items())
    ]
    association = {
        "account": account,
        "cluster": _cluster(backend),
        "user": "",
        "max": {"tres": {"total": tres}},
    }
    _db(backend, "POST", "/associations", {"associations": [association]})


def _db(backend: SlurmBackend, method: str, path: str, payload: Any = None, **params: str) -> Any:
    """An accounting call as the service user; a look-up that matched nothing is `{}`."""
    try:
        return backend.call(
            method,
            DB_API + path,
            payload,
            params=params or None,
            what=f"{method} {path}",
            user=backend.service_user,
        )
    except PermanentError as exc:
        if method == "GET" and has_code(exc, NOTHING_FOUND):
            return {}
        raise


def _cluster(backend: SlurmBackend) -> str:
    answer = _db(backend, "GET", "/associations", account=backend.default_account)
    for association in (answer or {}).get("associations") or []:
        if isinstance(association, dict) and association.get("cluster"):
            return str(association["cluster"])
    raise InvalidResponse(
        f"Slurm has no association of account {backend.default_account!r} to find the cluster"
    )


def _associations(backend: SlurmBackend, account: str) -> list[dict[str, Any]]:
    answer = _db(backend, "GET", "/associations", account=account)
    found = (answer or {}).get("associations") or []
    return [a for a in found if isinstance(a, dict) and a.get("account") == account]
