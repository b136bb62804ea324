"""Quota mirroring: each organization gets a Slurm account whose GrpTRES mirrors its GPU quota.

Through slurmrestd's `dbv0.0.38` API (slurmdbd), as the SlurmUser (an admin of the database),
with the same service token as the slurm driver. sacctmgr would do the same but needs munge,
slurm.conf and the Slurm client on the portal's machines; the REST API needs only HTTP.

- `ensure_account(org_slug)`: account `bf-<slug>` under `backfill`, with an association for the
  Unix user the jobs run as, allowed QOS normal and low. Idempotent.
- `set_gpu_limit(org_slug, gpu_model, limit)`: GrpTRES `gres/gpu:<model>=<limit>` on the
  account (None removes the limit). A job that would take the account over it stays PENDING with
  reason AssocGrpGRES, which the driver reports as "waiting for capacity (AssocGrpGRES)".
- `set_gpu_limits(org_slug, {model: limit})`: the whole GPU GrpTRES in one call (what the
  portal uses: slurmdbd replaces the account's whole TRES list on every change, so two
  read-then-write calls at once lose one update).
- `gpu_limits(org_slug)`: what Slurm holds now, `{model: limit}`.
- `mirror_gpu_limit(org_slug, gpu_model, limit)`: for the portal's quota code; does nothing
  (returns False) unless the configured backend is the slurm driver (`configured()`). The
  portal calls it from a task (portal.instances.tasks.quota_mirror) after a limit changes.

Slurm's limit is per GPU model over the whole cluster (every region's partition); the portal's
quotas are per region and model, so the portal passes the organization's total for the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .drivers.slurm import DB_API, SlurmBackend
from .errors import InvalidResponse, PermanentError


def _backend(backend: SlurmBackend | None) -> SlurmBackend:
    if backend is not None:
        return backend
    from . import get_backend

    configured = get_backend()
    if not isinstance(configured, SlurmBackend):
        raise PermanentError("the configured provisioning backend is not the slurm driver")
    return configured


NOTHING_FOUND = "[9003]"  # ESLURM_REST_EMPTY_RESULT: a query that matched nothing


def _db(backend: SlurmBackend, method: str, path: str, payload: Any = None, **params: str) -> Any:
    try:
        return backend._call(
            method,
            DB_API + path,
            payload,
            params=params or None,
            what=f"{method} {path}",
            user=backend.service_user,
        )
    except PermanentError as exc:
        if method == "GET" and NOTHING_FOUND in str(exc):
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


def ensure_account(org_slug: str, *, backend: SlurmBackend | None = None) -> str:
    """Make the organization's Slurm account (and its job user's association); its name."""
    backend = _backend(backend)
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


def set_gpu_limit(
    org_slug: str, gpu_model: str, limit: int | None, *, backend: SlurmBackend | None = None
) -> None:
    """Set (or, with None, remove) the account's GrpTRES for one GPU model (reads the others
    and writes them all back: not for concurrent use; see set_gpu_limits)."""
    _check_limit(limit)
    backend = _backend(backend)
    account = ensure_account(org_slug, backend=backend)
    # The POST replaces the account's whole GrpTRES list: send every GPU limit it keeps.
    limits = {**gpu_limits(org_slug, backend=backend), gpu_model.lower(): limit}
    _post_gpu_tres(
        backend,
        account,
        {model: -1 if count is None else count for model, count in limits.items()},
    )


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


def tracked_gpu_models(*, backend: SlurmBackend | None = None) -> set[str]:
    """GPU models Slurm tracks as TRES (`gres/gpu:<model>` in AccountingStorageTRES): the
    only ones a GrpTRES can name (any other makes slurmdbd refuse the whole list)."""
    backend = _backend(backend)
    answer = _db(backend, "GET", "/tres")
    return {
        str(item["name"]).removeprefix("gpu:")
        for item in (answer or {}).get("TRES") or []
        if isinstance(item, dict)
        and item.get("type") == "gres"
        and str(item.get("name") or "").startswith("gpu:")
    }


def set_gpu_limits(
    org_slug: str, limits: Mapping[str, int | None], *, backend: SlurmBackend | None = None
) -> dict[str, int]:
    """Set the account's whole GPU GrpTRES at once: `{model: limit}`; a model not given (or
    given None) has no limit. One POST, no read-modify-write, so the last call wins whole
    (set_gpu_limit's read-then-write loses an update when two run at once). Models Slurm does
    not track are left out. Returns what was sent."""
    for limit in limits.values():
        _check_limit(limit)
    backend = _backend(backend)
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


def gpu_limits(org_slug: str, *, backend: SlurmBackend | None = None) -> dict[str, int]:
    """The account's GPU limits in Slurm, `{model: limit}` (empty without account or limits)."""
    backend = _backend(backend)
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


def configured(settings: Any = None) -> bool:
    """Whether the configured provisioning backend is the slurm driver (without building it)."""
    from . import load_driver

    if settings is None:
        from django.conf import settings
    name = getattr(settings, "PROVISIONING_BACKEND", "simulator")
    try:
        driver = load_driver(name, getattr(settings, "PROVISIONING_DRIVERS", None))
    except ValueError:
        return False
    return isinstance(driver, type) and issubclass(driver, SlurmBackend)


def mirror_gpu_limits(org_slug: str, limits: Mapping[str, int | None]) -> bool:
    """Mirror all of an organization's GPU quotas into Slurm when the slurm driver is
    configured (set_gpu_limits); else a no-op returning False."""
    from . import get_backend

    backend = get_backend()
    if not isinstance(backend, SlurmBackend):
        return False
    set_gpu_limits(org_slug, limits, backend=backend)
    return True


def mirror_gpu_limit(org_slug: str, gpu_model: str, limit: int | None) -> bool:
    """Mirror a portal GPU quota into Slurm when the slurm driver is configured; else no-op."""
    from . import get_backend

    backend = get_backend()
    if not isinstance(backend, SlurmBackend):
        return False
    set_gpu_limit(org_slug, gpu_model, limit, backend=backend)
    return True
