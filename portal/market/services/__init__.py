"""What changes the spot market: price changes (by the market or by staff), the settings'
rules, capacity alerts. Every price change closes the row in force and opens a new one, in one
transaction, and announces itself on commit (`portal.market.signals.spot_price_changed`).

- `records`: the price rows, the settings' checks, staff's prices, history in bulk;
- `steps`: the market's own step after each capacity report;
- `alerts`: capacity alerts.
"""

from portal.market.services.alerts import (
    capacity_alert_create,
    capacity_alert_remove,
    capacity_alerts_check,
)
from portal.market.services.records import (
    check_currency,
    parse_price,
    spot_market_check,
    spot_price_history_add,
    spot_price_set,
)
from portal.market.services.steps import spot_price_adjust, spot_prices_adjust

__all__ = [
    "capacity_alert_create",
    "capacity_alert_remove",
    "capacity_alerts_check",
    "check_currency",
    "parse_price",
    "spot_market_check",
    "spot_price_adjust",
    "spot_price_history_add",
    "spot_price_set",
    "spot_prices_adjust",
]
