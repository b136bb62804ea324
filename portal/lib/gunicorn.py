"""gunicorn's logs in the portal's format (portal/lib/logs.py), the access line included.

Set by gunicorn.conf.py (`logger_class`). The access line is one structured event per request
with the request id, the organization and the user that portal.runtime.middleware bound while
the request was served (kept in the WSGI environ, as the line is written after the response).
No Django here: gunicorn's master process never loads it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from gunicorn import glogging

from portal.lib import logs

access_logger = structlog.get_logger("gunicorn.access")


class StructuredLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn has no types
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        logs.configure()
        formatter = logs.formatter(logs.default_format())
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(formatter)
            handler._gunicorn = True  # type: ignore[attr-defined]  # gunicorn's own marker
            log.addHandler(handler)
            log.propagate = False

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = getattr(resp, "status_code", None) or str(getattr(resp, "status", "-"))[:3]
        context = dict(environ.get("backfill.log_context") or {})
        context.setdefault("request_id", environ.get("backfill.request_id"))
        try:
            access_logger.info(
                f"{environ.get('REQUEST_METHOD', '-')} {environ.get('PATH_INFO', '-')} {status}",
                **{k: v for k, v in context.items() if v is not None},
                method=environ.get("REQUEST_METHOD"),
                path=environ.get("PATH_INFO"),
                status=int(status) if str(status).isdigit() else status,
                duration_ms=round(request_time.total_seconds() * 1000, 1),
                bytes=getattr(resp, "sent", None),
                remote=environ.get("REMOTE_ADDR"),
            )
        except Exception:
            self.error_log.exception("could not write the access line")
