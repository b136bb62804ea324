"""How the spot price moves: pure functions, no database.

The price aims at the operator's target share of the offer's spare GPUs sold (spare: the fleet
less what the operator's own work uses): each adjustment moves it by the gap between the sold
share and the target, as a share of the floor-to-ceiling range (10 points above the target: up
by a tenth of the range), never by more than the largest step, and never out of [floor,
ceiling]. An offer adjusts at most once per ADJUST_EVERY (so the largest step is per 5 minutes,
however often the capacity is reported).

A rise reclaims the running instances whose bid it passes, and GPUs it empties are GPUs nobody
pays for: it stops at the bid that would take back more GPUs than are sold beyond the target
share (`gpus_over_target`, `rise_within_bids`), so that a price going up never empties the offer
under its target. A sold-out 8-GPU offer whose lowest bid holds its price therefore stays there
until that machine ends or more than a machine's GPUs are over the target. A rise that could
always take back one instance over the target was tried and dropped: in the market benchmark it
interrupted customers almost twice as often for less revenue and a lower fill (bench/README.md,
the two-seed table).

Cuts are for selling, and a cut bills every running customer less at once. A cut is never
deeper than the free GPUs could make up (`next_price`): at 80 % sold the price falls by at most
20 % in one step, so that even if every free GPU sold at the lower price the offer would earn
no less than before. And the price falls only when it can sell more (`may_cut`):

- not while no further instance of the type fits: spare GPUs scattered over machines that no
  8-GPU instance can use are not a reason to lower its price (nobody could launch at the lower
  price);
- not before the offer has stayed under its target (by more than HOLD_BELOW) for CUT_AFTER: a
  dip (a customer leaving, a machine reclaimed for the operator's own work, GPUs taken back for
  the price) is sold again at the current price by the customers who come back, and a price
  chasing each dip down bills every customer less and is raised again minutes later. The
  operator's own work coming back shrinks the spare and lifts the share on its own;
- not sooner than `cut_wait` after the price's last change: customers who were turned away
  come back within the hour, so a price is given up to CUT_EVERY to sell before it is cut
  again; the more of the offer is sold, the more a cut costs (every running customer pays
  less) and the longer it waits (CUT_EVERY at the target, nothing when nothing is sold).

A cut must also pay (`Trial`): every cut is on trial for JUDGE_AFTER, and the offer's price is
not cut again meanwhile. The market then looks at the customers the cut's price sold to: the
offer's preemptible GPUs launched since the cut, each with its bid (max price), a customer's
own word on what it would pay. Those bid under the price before could not have bought at it:
the cut brought them. The cut pays if its price × every GPU launched at it is more than the
price before × the GPUs launched that would have bought at that price anyway (`cut_pays`):
the rate the cut sells at against the rate the price before would have sold at, over the same
hour and the same arrivals. A cut that pays is kept (and the next one may follow, by the rules
above); one that does not (it brought nobody, or too few to make up for the rest paying less)
is undone: the price goes back up to the one before it, taking back at most the GPUs the offer
sells beyond those of before the cut (`undo_room`: customers whose bid lies under the price
restored, as any rise does), and the offer's price is not cut again for UNDONE_WAIT
(`may_cut`). Where capacity sells out, this changes nothing (the price is not cut); where it
does not (at night), the price falls while lower prices sell for more, and stops where a lower
one would not.

The rate of customers arriving, not the GPUs running, is what a trial compares: an hour after
a cut at night the offer may run fewer GPUs than before it only because customers left (they
stay hours, and few arrive at night), which says nothing of the price. Judged by the GPUs
running, as it was until 7 December 2026, night cuts were undone for that reason, and the
night stayed under-sold (bench/README.md has the week's figures). A customer who leaves the
max price unset bids the on-demand price, so it counts among those who would have bought
anyway: where bids say nothing, cuts do not pay and the price stays up.

A trial is about one price in force: a rise or a price set by staff ends it. A cut while the
offer sells nothing bills nobody less and is not on trial (the price goes on falling, as
before, until someone buys).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

PLACES = Decimal("0.0001")
HUNDRED = Decimal(100)
ADJUST_EVERY = timedelta(minutes=5)
# Under the target by at most this many points, the price holds: one 8-GPU machine starting
# or ending moves a place's share by several points, and a price chasing each such dip down
# (to be raised again minutes later) sells nothing more and bills every customer less.
HOLD_BELOW = Decimal(3)
# How long an offer stays under its target (beyond HOLD_BELOW) before its price may fall.
CUT_AFTER = timedelta(minutes=30)
# How long a price is given to sell before it is cut again, at the target share.
CUT_EVERY = timedelta(hours=1)
# How long a cut is on trial before it is kept or undone (`Trial`).
JUDGE_AFTER = timedelta(hours=1)
# After a cut was undone, the offer's price is not cut again for this long.
UNDONE_WAIT = timedelta(hours=2)


@dataclass(frozen=True)
class Bounds:
    floor: Decimal
    ceiling: Decimal
    target_share: Decimal  # percent
    max_step: Decimal


def sold_share(*, free_gpus: int, total_gpus: int, internal_gpus: int = 0) -> Decimal | None:
    """The share (in %) of the spare GPUs (the fleet less the operator's own work) not free;
    None without any spare GPU."""
    spare = total_gpus - max(0, internal_gpus)
    if spare <= 0:
        return None
    used = max(0, spare - max(0, free_gpus))
    return (Decimal(used) * HUNDRED / Decimal(spare)).quantize(Decimal("0.01"))


def clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return max(low, min(high, value))


def next_price(*, current: Decimal, share: Decimal, bounds: Bounds) -> Decimal:
    """The price after one adjustment at `share` % sold (held within HOLD_BELOW of the
    target, under it)."""
    if bounds.target_share - HOLD_BELOW <= share < bounds.target_share:
        return current
    gap = (share - bounds.target_share) / HUNDRED
    wanted = gap * (bounds.ceiling - bounds.floor)
    step = clamp(wanted, -bounds.max_step, bounds.max_step)
    if step < 0:  # no deeper than the free GPUs could make up (see the module's docstring)
        step = max(step, -current * (HUNDRED - share) / HUNDRED)
    moved = clamp(current + step, bounds.floor, bounds.ceiling)
    return moved.quantize(PLACES, rounding=ROUND_HALF_UP)


def under_target(*, share: Decimal, target_share: Decimal) -> bool:
    """Whether `share` is low enough for `next_price` to lower the price."""
    return share < target_share - HOLD_BELOW


def cut_wait(*, share: Decimal, target_share: Decimal) -> timedelta:
    """How long after its last change a price may be cut at `share` % sold: CUT_EVERY at the
    target, in proportion below it (nothing when nothing is sold)."""
    if target_share <= 0:
        return timedelta(0)
    return CUT_EVERY * float(min(Decimal(1), max(Decimal(0), share) / target_share))


@dataclass(frozen=True)
class Trial:
    """A cut on trial: the price before it, the cut's price, the offer's preemptible GPUs sold
    when it was made, and when it took effect (the start of the cut's price row)."""

    before: Decimal
    after: Decimal
    sold_before: int
    at: datetime

    def due(self, now: datetime) -> bool:
        """Whether the cut has been in force long enough to be judged."""
        return now - self.at >= JUDGE_AFTER


def cut_pays(*, trial: Trial, launched: Iterable[tuple[Decimal, int]]) -> bool:
    """Whether the cut sells for more than the price before would have, from the offer's
    preemptible GPUs launched since the cut (`launched`: (bid, GPUs)): the cut's price × all
    of them, above the price before × those bid at it or more (equal: it does not pay, since
    the customers who would have come anyway pay less for nothing)."""
    gained, anyway = brought(trial=trial, launched=launched)
    return trial.after * (gained + anyway) > trial.before * anyway


def brought(*, trial: Trial, launched: Iterable[tuple[Decimal, int]]) -> tuple[int, int]:
    """Of the GPUs launched since the cut: (those bid under the price before, the cut brought
    them; those bid at it or more, who would have bought anyway)."""
    gained = anyway = 0
    for bid, gpus in launched:
        if bid < trial.before:
            gained += gpus
        else:
            anyway += gpus
    return gained, anyway


def undo_room(*, trial: Trial, sold_now: int) -> int:
    """The GPUs an undone cut may take back when it restores the price before it: at most those
    the offer sells beyond what it sold before the cut (none if it sells no more)."""
    return max(0, sold_now - trial.sold_before)


def may_cut(
    *,
    under_since: datetime | None,
    now: datetime,
    free_instances: int,
    last_change: datetime | None = None,
    share: Decimal | None = None,
    target_share: Decimal | None = None,
    on_trial: bool = False,
    undone_at: datetime | None = None,
) -> bool:
    """Whether a cut proposed at `now` may be made: no cut of the offer is on trial, none was
    undone within UNDONE_WAIT (`undone_at`), at least one more instance of the type fits, the
    offer has been under its target since `under_since` (None: not known to be) for CUT_AFTER
    at least, and the price has been in force since `last_change` for `cut_wait`."""
    if on_trial or (undone_at is not None and now - undone_at < UNDONE_WAIT):
        return False
    if free_instances <= 0 or under_since is None:
        return False
    if now - under_since < CUT_AFTER:
        return False
    if last_change is not None and share is not None and target_share is not None:
        return now - last_change >= cut_wait(share=share, target_share=target_share)
    return True


def gpus_over_target(*, share: Decimal, target_share: Decimal, spare_gpus: int) -> int:
    """How many of the spare GPUs are sold beyond the target share (0 at or under it): what a
    rise may take back from running customers."""
    if share <= target_share or spare_gpus <= 0:
        return 0
    return int((share - target_share) * spare_gpus / HUNDRED)


def rise_within_bids(
    *, current: Decimal, proposed: Decimal, bids: Iterable[tuple[Decimal, int]], room: int
) -> Decimal:
    """The highest price from `current` up to `proposed` whose reclaims (the running instances
    bid below it, as (bid, GPUs)) take back at most `room` GPUs. A bid equal to the price
    keeps its instance, so the rise stops at the first bid it may not pass."""
    if proposed <= current:
        return proposed
    outbid = 0
    for bid, gpus in sorted(bids):
        if bid >= proposed:
            break
        outbid += gpus
        if outbid > room:
            return max(current, bid)
    return proposed
