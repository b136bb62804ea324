"""Reclaim orders: the operator takes its GPUs back, choosing the machines by policy and
giving each its notice (issue 15)."""
