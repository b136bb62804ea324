"""The billing page as rendered, kept for the minute it shows ("up to Dec 7, 14:05 UTC").

Rendering the page costs more than twice the console's floor for an organization of 1,000
instances (rating the month's lines and the open intervals, and ~40 rows of tables), and what
it shows changes only when something is written or the clock moves. The rendered content is kept
under a key that names:

- the minute of the clock: running instances accrue by the second, and the page shows the
  minute, so a view in the next minute renders again;
- the organization's usage version (`portal.billing.usage`, replaced by metering and by every
  write of usage);
- the organization's page version, replaced by the writes of what the page shows besides usage
  (receivers.py: its invoices, budget, credit grants, reservations, volumes, the organization
  itself; an instance's state and name change with what it bills, under the usage version);
- the portal's page version, replaced by writes that may touch any organization's page and are
  rare: the catalog's names and prices, credit notes, credit applications, payments, volume
  sizes;
- the month, the language, and what the viewer may see (links to instances).

A write through a bulk `update()` sends no signal: what it changes shows at the next minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache
from django.utils.translation import get_language

from portal.billing.periods import Month
from portal.billing.usage import ANY, usage_version_key
from portal.web import versions

KEPT_FORMAT = 1  # in the keys: a release that changes the page never reads old ones
KEPT_TTL = 120  # a key names its minute: never read after it
PORTAL = "portal"  # in place of an organization: the version of every organization's page


def _version_key(scope: int | str) -> str:
    return f"billing:page-version:{scope}"


def page_changed(organization_id: int | None) -> None:
    """Something the organization's billing page shows was written (None: something any
    organization's page may show): the pages kept are not read again."""
    versions.retire([_version_key(PORTAL if organization_id is None else organization_id)])


def _versions(organization_id: int) -> list[str]:
    keys = [
        usage_version_key(organization_id, ANY),
        _version_key(organization_id),
        _version_key(PORTAL),
    ]
    return list(versions.tokens(keys).values())


def kept_page(
    *,
    organization_id: int,
    month: Month,
    now: datetime,
    viewer: str,
    render: Callable[[], tuple[str, str | None]],
) -> tuple[str, str | None]:
    """The page's content and why launches are refused (the layout's banner), as kept for the
    minute of `now`, or rendered by `render` and kept. `viewer`: what the viewer may see."""
    key = ":".join(
        [
            f"billing:page{KEPT_FORMAT}",
            str(organization_id),
            month.key,
            f"{now:%Y%m%d%H%M}",
            viewer,
            get_language() or "",
            *_versions(organization_id),
        ]
    )
    found = cache.get(key)
    if found is None:
        found = render()
        cache.set(key, found, timeout=KEPT_TTL)
    return found
