"""The spot market: preemptible prices that follow spare capacity, their history, bids and
capacity alerts (issue 16)."""
