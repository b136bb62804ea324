"""`/metrics` for Prometheus: django-prometheus' request and database metrics, the counters
and histograms of portal.lib.metrics, and figures read at scrape time.

Read at scrape time (one process answers for the whole portal, so they are not per-process
series): instances by state, region and type; GPU capacity per region and GPU model; Celery
queue depth per queue and the messages workers hold. In multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, production) the per-process samples of every web and worker process
of the host are added up from their files; otherwise this process's registry is read.

Who may read it: a request with `Authorization: Bearer <METRICS_TOKEN>`, or from an address in
METRICS_ALLOWED_IPS. Anyone else gets 401 (no credentials; a token is configured) or 403, and
no data. With neither setting, /metrics is off (403).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from portal.capacity.selectors import demand_by_place, fleet
from portal.instances.models import Instance
from portal.lib.addresses import monitoring_access
from portal.notifications.models import Notification

logger = logging.getLogger(__name__)


# Read at scrape time

# States whose GPUs are taken on the backend (a stopped instance gave its GPUs back).
HOLDING_GPUS = ("pending", "provisioning", "running", "stopping", "starting", "rebooting")


@dataclass
class CapacityFigures:
    """GPUs of one GPU model in one region.

    fleet: every GPU the backend has; free: what it could give out now; sold: held by the
    portal's customers' instances; internal: the operator's own use, as the backend reports it
    (`capacity()`'s internal GPUs), or, from a backend that does not, what is neither free nor
    sold.
    """

    fleet: int = 0
    internal: int = 0
    sold: int = 0
    free: int = 0


def capacity_figures() -> dict[tuple[str, str], CapacityFigures]:
    """(region code, GPU model code) -> figures: the fleet as the backend last reported it
    (portal.capacity's snapshot, stored by the periodic capacity refresh; no backend call
    here) and the GPUs held by the portal's live instances."""
    current = fleet()
    figures = {
        place: CapacityFigures(fleet=total, free=current.free.get(place, 0))
        for place, total in current.total.items()
    }
    sold = (
        Instance.objects.filter(state__in=HOLDING_GPUS)
        .values("region__code", "instance_type__gpu_model__code")
        .annotate(gpus=Sum("gpus"))
        .order_by()
    )
    for row in sold:
        key = (row["region__code"], row["instance_type__gpu_model__code"])
        if key in figures:
            figures[key].sold = row["gpus"] or 0
    reported = demand_by_place()
    for place, entry in figures.items():
        demand = reported.get(place)
        if demand is not None and (demand.internal or demand.customer):
            entry.internal = demand.internal
        else:  # a backend that does not report its own work: what is neither free nor sold
            entry.internal = max(0, entry.fleet - entry.free - entry.sold)
    return figures


def celery_queues() -> list[str]:
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        queues.add(getattr(queue, "name", str(queue)))
    return sorted(queues)


# kombu's Redis transport keeps a queue's messages of priority n in "<queue>\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class PortalCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._instances()
        yield from self._capacity()
        yield from self._queues()
        yield from self._outbox()

    def _instances(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "backfill_instances",
            "Instances by state, region and instance type.",
            labels=["state", "region", "instance_type"],
        )
        rows = Instance.objects.values("state", "region__code", "instance_type__code").annotate(
            n=Count("id")
        )
        for row in rows.order_by():
            family.add_metric(
                [row["state"], row["region__code"], row["instance_type__code"]], row["n"]
            )
        yield family

    def _capacity(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "backfill_capacity_gpus",
            "GPUs per region and GPU model: fleet, internal (operator's own use), sold, free.",
            labels=["region", "gpu_model", "kind"],
        )
        for (region, model), figures in sorted(capacity_figures().items()):
            for kind in ("fleet", "internal", "sold", "free"):
                family.add_metric([region, model, kind], getattr(figures, kind))
        yield family

    def _outbox(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "backfill_emails_outbox",
            "E-mails in the outbox: waiting to be sent (or retried), or given up after every "
            "attempt failed (staff look at those).",
            labels=["state"],
        )
        for state, number in _outbox_rows().items():
            family.add_metric([state], number)
        yield family

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "backfill_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        held = GaugeMetricFamily(
            "backfill_celery_messages_held",
            "Messages workers took and have not acknowledged yet (running, reserved or "
            "waiting for their ETA).",
        )
        try:
            client = redis.Redis.from_url(
                settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
            )
            pipe = client.pipeline()
            queues = celery_queues()
            for queue in queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            pipe.hlen("unacked")
            answers = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: broker unreachable: %s", type(exc).__name__)
            return
        per_queue = defaultdict(int)
        for index, queue in enumerate(queues):
            per_queue[queue] = sum(answers[index * 4 : index * 4 + 4])
        for queue, number in per_queue.items():
            depth.add_metric([queue], number)
        held.add_metric([], answers[-1])
        yield depth
        yield held


def request_monitoring_access(request: HttpRequest) -> int:
    return monitoring_access(
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        authorization=request.META.get("HTTP_AUTHORIZATION", ""),
        token=settings.METRICS_TOKEN,
        allowed=tuple(settings.METRICS_ALLOWED_IPS),
    )


def _outbox_rows() -> dict[str, int]:
    waiting = Notification.objects.filter(sent_at__isnull=True, failed_at__isnull=True).count()
    given_up = Notification.objects.filter(failed_at__isnull=False).count()
    return {"waiting": waiting, "given_up": given_up}


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
    else:
        merged = CollectorRegistry()
        merged.register(_Everything())
    merged.register(PortalCollector())
    return merged


class _Everything(Collector):
    """This process's default registry, inside a registry of our own."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    status = request_monitoring_access(request)
    if status != 200:
        response = HttpResponse(
            "Unauthorized\n" if status == 401 else "Forbidden\n",
            status=status,
            content_type="text/plain",
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
