"""Tunables of clusters, read from Django settings with these defaults."""

from django.conf import settings

DEFAULTS = {
    # The most nodes a customer may ask for in one cluster (the operator's maximum).
    "CLUSTER_MAX_NODES": 16,
    # Seconds between two looks at a cluster whose nodes are changing state.
    "CLUSTER_POLL_INTERVAL": 2.0,
    # Reconciliation re-enqueues the task of a cluster in transition for longer than this.
    "CLUSTER_STALE_AFTER": 120,
    "CLUSTERS_PER_PAGE": 25,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
