"""gunicorn's configuration for Backfill, read from the working directory:

    gunicorn portal.wsgi            # in the repository (or the release) directory

Every value comes from the environment (README, "Configuration"; docs/deploy.md):
- GUNICORN_BIND (default 127.0.0.1:$PORT, PORT 8000): where to listen; behind a proxy, an
  address the proxy reaches;
- WEB_CONCURRENCY (default 2 x cores + 1) processes of WEB_THREADS (default 4) threads: the
  web holds at most WEB_CONCURRENCY x WEB_THREADS PostgreSQL connections (one per thread,
  kept DATABASE_CONN_MAX_AGE seconds);
- TRUSTED_PROXIES: the proxies whose X-Forwarded-* headers count (also Django's, see
  portal.runtime.middleware);
- PROMETHEUS_MULTIPROC_DIR: the host's directory of metric files (shared with the Celery
  worker of the host), so that /metrics adds up every process.

With production settings, a missing required variable stops gunicorn's master before any
worker starts, with one line naming it (portal/settings/required.py).
"""

import multiprocessing
import os

if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production"):
    from portal.settings.required import refuse_to_start_unless_configured

    refuse_to_start_unless_configured()

wsgi_app = "portal.wsgi:application"
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 4)
# A request that takes longer than this is killed (and its worker replaced).
timeout = int(os.environ.get("WEB_TIMEOUT") or 30)
graceful_timeout = 30  # SIGTERM: requests under way get this long to finish
keepalive = 5
# Recycle workers now and then (memory), not all at once.
max_requests = 2000
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "portal.lib.gunicorn.StructuredLogger"
proc_name = "backfill-web"
# gunicorn's control socket (gunicornc) is one path per user by default: off unless asked for.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    """A dead worker's live gauges must not be added up any more (counters stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
