"""The market's reactions to apps below it, connected in MarketConfig.ready().

- Each stored capacity snapshot moves the prices and checks the capacity alerts (a task,
  enqueued on commit: the snapshot is stored by the instances app's periodic refresh).
"""

import logging

from django.db import transaction
from django.dispatch import receiver

from portal.capacity.signals import capacity_snapshot_stored

logger = logging.getLogger(__name__)


@receiver(capacity_snapshot_stored, dispatch_uid="market-after-snapshot")
def after_snapshot(sender, snapshot, **kwargs) -> None:
    transaction.on_commit(_enqueue)


def _enqueue() -> None:
    from portal.market.tasks import after_capacity_snapshot

    try:
        after_capacity_snapshot.delay()
    except Exception:  # the broker is down: the periodic task moves the prices anyway
        logger.warning("could not enqueue the market's snapshot task")
