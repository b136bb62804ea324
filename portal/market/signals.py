"""What the market announces, for apps above it to react to. Sent when the transaction that
made the change commits.

`spot_price_changed`: `region_id`, `instance_type_id`, `price` (Decimal, the new price),
`previous` (Decimal or None), `at` (when it took effect). Receivers: portal.reclaims.receivers
(a price above a bid reclaims the instance), portal.billing.receivers (kept usage sums).

`spot_bids_asked` is a question: before the market raises an offer's price it asks
(`region_id`, `instance_type_id`) for the bids a higher price would pass; each receiver answers
with a list of (bid per hour, GPUs) of the running instances it would reclaim. Receiver:
portal.reclaims.receivers.

`spot_launches_asked` is a question too: to judge a cut on trial the market asks
(`region_id`, `instance_type_id`, `since`) for the offer's preemptible instances launched
since the cut; each receiver answers with a list of (bid per hour, GPUs), whatever their state
now (no bid: the on-demand price). Receiver: portal.reclaims.receivers.
"""

from django.dispatch import Signal

spot_price_changed = Signal()

spot_bids_asked = Signal()

spot_launches_asked = Signal()

# An offer's price history changed from `since` on (a price recorded, a history loaded):
# `region_id`, `instance_type_id`, `since` (datetime). Sent inside the transaction that wrote
# it, holding `portal.market.locks.spot_history_write_lock`, so that what a receiver derives
# from the history commits with it. Receiver: portal.billing.receivers (re-seals usage).
spot_history_rewritten = Signal()

# A capacity alert came true: `alert` (CapacityAlert), `free_instances` (int), `price`
# (Decimal or None). Sent inside the transaction that marks it fired. Receivers:
# portal.webhooks.receivers (the `capacity.available` event).
capacity_alert_fired = Signal()
