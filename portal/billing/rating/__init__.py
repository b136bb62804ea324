"""Rating: what usage costs, computed by the database in one aggregate query per question.

Every question (lines of a month, spend per day, per instance, the total) is the same
expression: each interval clipped to the period (an open interval runs up to `now`), its
seconds times its hourly unit price, summed with GROUP BY. Only open intervals are rated in
Python (`live`, by the same rule, and tested against it). The exact sum (seconds × price, a
NUMERIC) comes back and is divided by 3600 and rounded to cents once, per invoice line.

The package: `intervals` (the SQL of each interval's seconds and price, `rated()`), `by_line`
(invoice lines, days, totals), `by_instance`, `live` (open intervals rated in memory between
the kept parts of `portal.billing.usage`) and `spot` (preemptible usage at each spot price).
"""

from portal.billing.rating.by_instance import (
    InstanceSums,
    InstanceUsage,
    instance_sums,
    instance_totals,
    per_instance,
    per_instance_of,
    per_instance_ranked,
)
from portal.billing.rating.by_line import (
    LINE_FIELDS,
    Line,
    all_organizations,
    average_price,
    line_day_rows,
    lines,
    lines_and_per_day,
    lines_and_per_day_of,
    per_day,
    total,
)
from portal.billing.rating.intervals import (
    EXACT,
    EpochSeconds,
    market_priced_before,
    rated,
    sealed_price_seconds_whole,
)
from portal.billing.rating.live import (
    KIND,
    REGION_ID,
    TYPE_ID,
    UNIT_PRICE,
    SpotRows,
    hourly_run_rate,
    open_interval_rows,
    rate_open,
    spot_integral_at,
    spot_price_at,
    spot_rows,
    spot_rows_for_open,
)
from portal.billing.rating.spot import (
    SpotSlice,
    interval_breakdown,
    line_breakdown,
    spot_slices,
)

__all__ = [
    "EXACT",
    "KIND",
    "LINE_FIELDS",
    "REGION_ID",
    "TYPE_ID",
    "UNIT_PRICE",
    "EpochSeconds",
    "InstanceSums",
    "InstanceUsage",
    "Line",
    "SpotRows",
    "SpotSlice",
    "all_organizations",
    "average_price",
    "hourly_run_rate",
    "instance_sums",
    "instance_totals",
    "interval_breakdown",
    "line_breakdown",
    "line_day_rows",
    "lines",
    "lines_and_per_day",
    "lines_and_per_day_of",
    "market_priced_before",
    "open_interval_rows",
    "per_day",
    "per_instance",
    "per_instance_of",
    "per_instance_ranked",
    "rate_open",
    "rated",
    "sealed_price_seconds_whole",
    "spot_integral_at",
    "spot_price_at",
    "spot_rows",
    "spot_rows_for_open",
    "spot_slices",
    "total",
]
