import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from portal.runtime.worker import KeepMessagesStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

# Every task holds a lease on its id while it runs, and every worker renews the messages it
# holds and writes its heartbeat: see portal/runtime/worker.py.
app = Celery("portal", task_cls="portal.runtime.worker:LeasedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["consumer"].add(KeepMessagesStep)


@task_prerun.connect(dispatch_uid="backfill-db-connections-before-task")
@task_postrun.connect(dispatch_uid="backfill-db-connections-after-task")
def database_connections_as_around_a_request(task=None, **kwargs) -> None:
    """Around each task, what Django does around each request: close a connection that is
    broken, left in a transaction or older than CONN_MAX_AGE, and keep the others.

    Celery's own Django fix-up closes every connection before and after every task unless
    CELERY_DB_REUSE_MAX is set (settings: it is), so each task paid a new PostgreSQL connection
    (~5 ms, a cold backend) and CONN_MAX_AGE and the health checks never applied. Eager tasks
    (tests) run inside the caller's connection and transaction: left alone.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
