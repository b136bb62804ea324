"""What the capacity app announces, for apps above it to react to.

`capacity_snapshot_stored` is sent after each capacity snapshot is stored (on commit, at once
outside a transaction), with `snapshot`. Receivers: portal.market.receivers (spot prices and
capacity alerts follow each snapshot), portal.reclaims.receivers (shortfalls become reclaim
orders; the early "reclaim risk" warning).
"""

from django.dispatch import Signal

capacity_snapshot_stored = Signal()
