"""The simulator's HTTP face: the provisioning API under /v1, test controls under /control.

    GET  /healthz                          no token, no faults
    GET  /v1/machines                      {"machines": [machine, ...]}
    POST /v1/machines                      create; 201 new, 200 same request_id again
    POST /v1/clusters                      {"request_id", "instance_type", "region", "image",
                                            "nodes", "ssh_keys", "volumes"?, "preemptible",
                                            "name", "account"?}: N machines on one fabric or
                                            none (409 capacity with "available"); 201 new,
                                            200 same request_id again: {"machines": [...]}
    GET  /v1/clusters/{request_id}         {"machines": [...]}: the cluster's machines in node
                                           order, as GET /v1/machines/{id} shows each ([] for
                                           an unknown request id)
    GET  /v1/machines/{id}                 machine
    POST /v1/machines/{id}/{start|stop|reboot|terminate}   (DELETE /v1/machines/{id} terminates)
    POST /v1/machines/{id}/reclaim         {"at": ISO time}: the portal ends this preemptible
                                           machine at that time (after its notice)
    POST /v1/machines/{id}/notice          {"at": ISO time | null}: the portal announces a
                                           reclaim at that time it may still withdraw (null):
                                           on the metadata only, nothing ends
    GET  /v1/capacity                      {"capacity": [...]}: free, fleet, internal,
                                           customer-held GPUs, shortfall, forecast
    GET  /metadata/{id}/interruption       no token (the machine's own view): {"action",
                                           "time"} while a reclaim (or a notice) is
                                           announced, else 404
    GET  /v1/volumes                       {"volumes": [volume, ...]}
    POST /v1/volumes                       {"request_id", "region", "size_gb", "name",
                                            "account"?}: 201 new, 200 same request_id again
    GET  /v1/volumes/{id}                  volume
    POST /v1/volumes/{id}/resize           {"size_gb"}: grow only
    DELETE /v1/volumes/{id}                delete (409 while attached; 200 when unknown)
    GET  /v1/storage                       {"storage": [{"region", "free_gb", "total_gb"}],
                                            "shared_volumes"}
    GET  /v1/catalog                       regions, instance types, nodes
    GET  /control/state                    machines with nodes, used GPUs, delays, faults, stats
    POST /control/reset                    {"catalog"?}: no machines, no faults, start-up delays
    GET|PUT /control/fleet                 the catalog (refused with 409 if it strands machines)
    POST /control/faults                   see faults.Faults
    POST /control/delays                   provision, start, stop, reboot, terminate, jitter,
                                           reclaim_notice (seconds)
    POST /control/machines/{id}/lose       the backend forgets the machine
    POST /control/machines/{id}/fail       {"detail"?}: the machine fails now
    GET|PUT /control/demand                internal demand curves (portal.simulator.demand)
                                           and what the operator's work wants and gets now
    POST /control/storage                  {"shared_volumes": bool}
    POST /control/volumes/{id}/lose        the backend forgets the volume
    POST /control/machines/{id}/files      {"path", "content"}: a program on the machine
                                           writes a file (into a volume under its mount path)
    GET  /control/machines/{id}/files?path=/data/x/y   reads it back: {"content"}
    POST /control/reclaim                  {"machine_ids"? | "region"?, "gpu_model"?, "gpus"?,
                                            "notice_seconds"?}: internal demand rises

Every route but /healthz and /metadata needs `Authorization: Bearer <token>`; faults hit /v1 only.
Errors are answered as `{"error": {"code": ..., "message": ...}}`; codes the driver relies on:
`not_found` (404), `capacity` and `invalid_state` (409), `unauthorized` (401).
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from .catalog import Catalog
from .engine import Simulator, parse_catalog
from .faults import FaultError, Faults
from .records import BadRequest, SimulatorError, Timings

log = logging.getLogger("portal.simulator")

MAX_BODY = 1024 * 1024
MACHINE = r"(?P<machine_id>[A-Za-z0-9_.-]+)"
RESERVATION = r"(?P<reservation_id>[A-Za-z0-9_.-]+)"
METADATA = re.compile(rf"^/metadata/{MACHINE}/interruption$")
VOLUME = r"(?P<volume_id>[A-Za-z0-9_.-]+)"

Handler = Callable[["RequestHandler", dict[str, Any], dict[str, str]], tuple[int, Any]]


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        simulator: Simulator,
        *,
        token: str,
        initial_catalog: Catalog,
        initial_timings: Timings,
        seed: int | None = None,
    ) -> None:
        super().__init__(address, RequestHandler)
        self.simulator = simulator
        self.token = token
        # What /control/reset goes back to.
        self.initial_catalog = initial_catalog
        self.initial_timings = initial_timings
        self.faults = Faults()
        self.rng = random.Random(seed)
        self.fault_lock = threading.Lock()
        self.stats = {"api_calls": 0, "errors": 0, "slow": 0, "garbage": 0}

    def roll(self, kind: str) -> bool:
        with self.fault_lock:
            fired = self.faults.fires(kind, self.rng)
            if fired:
                self.stats[kind if kind != "error" else "errors"] += 1
            return fired

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes | bytearray):  # typeshed allows it; an AF_INET server has a str
            host = host.decode()
        return f"http://{host}:{port}"


class RequestHandler(BaseHTTPRequestHandler):
    server: SimulatorServer
    query = ""
    protocol_version = "HTTP/1.1"
    server_version = "BackfillSimulator/1"
    # Headers and body go out in two writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # Plumbing

    def _dispatch(self, method: str) -> None:
        path, _, self.query = self.path.partition("?")
        try:
            body = self._read_body()
            if path == "/healthz" and method == "GET":
                self._send(200, {"ok": True})
                return
            if method == "GET" and (match := METADATA.match(path)):
                # The machine asks its own metadata service: no token, no faults.
                notice = self.server.simulator.interruption(match["machine_id"])
                if notice is None:
                    self._send(404, _error("not_found", "no interruption scheduled"))
                else:
                    self._send(200, notice)
                return
            handler, params, matched = _route(method, path)
            if not self._authorized():
                self._send(401, _error("unauthorized", "missing or wrong bearer token"))
                return
            if handler is None:
                code = "method_not_allowed" if matched else "not_found"
                self._send(405 if matched else 404, _error(code, f"no route {method} {path}"))
                return
            if path.startswith("/v1/"):
                self._api_call(handler, body, params, method)
            else:
                status, payload = handler(self, body, params)
                self._make_durable(method)
                self._send(status, payload)
        except SimulatorError as exc:
            error = _error(exc.code, str(exc))
            if getattr(exc, "available", None) is not None:
                error["error"]["available"] = exc.available  # type: ignore[attr-defined]
            self._send(exc.status, error)
        except FaultError as exc:
            self._send(400, _error("bad_request", str(exc)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (it timed out); nothing left to tell it
        except Exception:
            log.exception("internal error on %s %s", method, path)
            self._send(500, _error("internal", "internal error"))

    def _make_durable(self, method: str) -> None:
        """A change is on disk (fsynced) before it is answered: a machine the simulator said it
        made survives a crash right after. Concurrent requests share one write (the flush
        writes every change made so far); reads only catch up with the clock, which a restart
        recomputes, and are left to the periodic flush."""
        if method != "GET":
            self.server.simulator.flush()

    def _api_call(
        self, handler: Handler, body: dict[str, Any], params: dict[str, str], method: str
    ) -> None:
        server = self.server
        with server.fault_lock:
            server.stats["api_calls"] += 1
        if server.roll("error"):
            status = server.faults.error_status
            self._send(status, _error("injected", "injected failure"))
            return
        slow = server.roll("slow")
        if slow and not server.faults.slow_after:
            time.sleep(server.faults.slow_seconds)
        status, payload = handler(self, body, params)
        self._make_durable(method)
        if slow and server.faults.slow_after:
            time.sleep(server.faults.slow_seconds)
        if server.roll("garbage"):
            self._send_garbage(server.faults.garbage_kind)
        else:
            self._send(status, payload)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        expected = self.server.token
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.encode()
        )

    def _read_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise BadRequest("bad Content-Length") from exc
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise BadRequest("request body too large")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest("request body is not JSON") from exc
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body

    def _send(self, status: int, payload: Any) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json")

    def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _send_garbage(self, kind: str) -> None:
        if kind == "html":
            self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif kind == "truncated":
            self._send_raw(200, b'{"id": "m-', "application/json")
        else:
            self._send(200, {"status": "ok"})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# The provisioning API


def _create(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    fields = ("request_id", "instance_type", "region", "image", "ssh_keys", "name", "preemptible")
    missing = [f for f in fields if f not in body]
    if missing:
        raise BadRequest(f"missing fields: {', '.join(missing)}")
    fails = h.server.rng.random() < h.server.faults.boot_failure_rate
    machine, created = h.server.simulator.create(
        **{f: body[f] for f in fields},
        fails_on_boot=fails,
        account=body.get("account"),
        volumes=body.get("volumes"),
    )
    return (201 if created else 200), machine


def _create_cluster(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    fields = (
        *("request_id", "instance_type", "region", "image", "nodes", "ssh_keys"),
        *("preemptible", "name"),
    )
    missing = [f for f in fields if f not in body]
    if missing:
        raise BadRequest(f"missing fields: {', '.join(missing)}")
    nodes = body["nodes"]
    if isinstance(nodes, bool) or not isinstance(nodes, int):
        raise BadRequest("nodes must be a whole number")
    rate = h.server.faults.boot_failure_rate
    fails = [h.server.rng.random() < rate for _ in range(max(0, nodes))]
    machines, created = h.server.simulator.create_cluster(
        **{f: body[f] for f in fields},
        volumes=body.get("volumes") or [],
        account=body.get("account"),
        fails_on_boot=fails,
    )
    return (201 if created else 200), {"machines": machines}


def _cluster(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, {"machines": h.server.simulator.cluster(params["request_id"])}


def _list(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, {"machines": h.server.simulator.list()}


def _get(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.get(params["machine_id"])


def _action(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.action(params["machine_id"], params.get("action", "terminate"))


def _time(raw: Any) -> float:
    if not isinstance(raw, str):
        raise BadRequest("at must be an ISO 8601 time with a time zone")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"at is not a time: {raw!r}") from exc
    if at.tzinfo is None:
        raise BadRequest("at must have a time zone")
    return at.timestamp()


def _reclaim_machine(
    h: RequestHandler, body: dict[str, Any], params: dict[str, str]
) -> tuple[int, Any]:
    return 200, h.server.simulator.reclaim_machine(params["machine_id"], _time(body.get("at")))


def _notice_machine(
    h: RequestHandler, body: dict[str, Any], params: dict[str, str]
) -> tuple[int, Any]:
    if "at" not in body:
        raise BadRequest("at is required: an ISO 8601 time with a time zone, or null")
    at = None if body["at"] is None else _time(body["at"])
    return 200, h.server.simulator.notice_machine(params["machine_id"], at)


def _capacity(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, {"capacity": h.server.simulator.capacity()}


def _volume_create(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    fields = ("request_id", "region", "size_gb", "name")
    missing = [f for f in fields if f not in body]
    if missing:
        raise BadRequest(f"missing fields: {', '.join(missing)}")
    volume, created = h.server.simulator.volume_create(
        **{f: body[f] for f in fields}, account=body.get("account")
    )
    return (201 if created else 200), volume


def _volume_list(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, {"volumes": h.server.simulator.volume_list()}


def _volume_get(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.volume_get(params["volume_id"])


def _volume_resize(
    h: RequestHandler, body: dict[str, Any], params: dict[str, str]
) -> tuple[int, Any]:
    if "size_gb" not in body:
        raise BadRequest("missing fields: size_gb")
    return 200, h.server.simulator.volume_resize(params["volume_id"], body["size_gb"])


def _volume_delete(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    volume = h.server.simulator.volume_delete(params["volume_id"])
    return 200, {"deleted": True, "volume": volume}


def _storage(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    simulator = h.server.simulator
    return 200, {
        "storage": simulator.storage_capacity(),
        "shared_volumes": simulator.shared_volumes,
    }


def _reserve(h: RequestHandler, body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    fields = ("region", "gpu_model", "gpus", "start", "end")
    missing = [f for f in fields if f not in body]
    if missing:
        raise BadRequest(f"missing fields: {', '.join(missing)}")
    reservation, created = h.server.simulator.reserve(
        params["reservation_id"], **{f: body[f] for f in fields}, account=body.get("account")
    )
    return (201 if created else 200), reservation


def _release(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, {"released": h.server.simulator.release(params["reservation_id"])}


def _reservations(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, {"reservations": h.server.simulator.list_reservations()}


def _catalog(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.catalog_view()


# Controls


def _state(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    server = h.server
    with server.fault_lock:
        extra = {"faults": server.faults.to_dict(), "stats": dict(server.stats)}
    return 200, {**server.simulator.dump(), **extra}


def _reset(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    server = h.server
    catalog = parse_catalog(body["catalog"]) if "catalog" in body else server.initial_catalog
    server.simulator.reset(catalog, server.initial_timings)
    with server.fault_lock:
        server.faults = Faults()
        server.stats = dict.fromkeys(server.stats, 0)
    return 200, {"ok": True}


def _put_fleet(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    h.server.simulator.set_catalog(parse_catalog(body))
    return 200, h.server.simulator.catalog_view()


def _faults(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    with h.server.fault_lock:
        h.server.faults.update(body)
        return 200, h.server.faults.to_dict()


def _delays(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    return 200, asdict(h.server.simulator.set_timings(body))


def _get_demand(h: RequestHandler, _: dict[str, Any], __: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.demand_view()


def _put_demand(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    return 200, h.server.simulator.set_demand(body)


def _lose(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    h.server.simulator.lose(params["machine_id"])
    return 200, {"ok": True}


def _fail(h: RequestHandler, body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    detail = body.get("detail", "hardware fault")
    if not isinstance(detail, str):
        raise BadRequest("detail must be a string")
    return 200, h.server.simulator.fail(params["machine_id"], detail)


def _set_storage(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    shared = body.get("shared_volumes")
    if not isinstance(shared, bool):
        raise BadRequest("shared_volumes must be true or false")
    h.server.simulator.set_shared_volumes(shared)
    return 200, {"shared_volumes": shared}


def _lose_volume(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    h.server.simulator.lose_volume(params["volume_id"])
    return 200, {"ok": True}


def _write_file(h: RequestHandler, body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    h.server.simulator.write_file(params["machine_id"], body.get("path"), body.get("content"))
    return 200, {"ok": True}


def _read_file(h: RequestHandler, _: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    path = parse_qs(h.query).get("path", [""])[0]
    return 200, {"content": h.server.simulator.read_file(params["machine_id"], path)}


def _reclaim(h: RequestHandler, body: dict[str, Any], _: dict[str, str]) -> tuple[int, Any]:
    known = {"machine_ids", "region", "gpu_model", "gpus", "notice_seconds"}
    if unknown := set(body) - known:
        raise BadRequest(f"unknown fields {sorted(unknown)}; known: {sorted(known)}")
    ids = body.get("machine_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise BadRequest("machine_ids must be a list of ids")
    gpus, notice = body.get("gpus"), body.get("notice_seconds")
    if gpus is not None and not (isinstance(gpus, int) and not isinstance(gpus, bool)):
        raise BadRequest("gpus must be an integer")
    if notice is not None and not (
        isinstance(notice, int | float) and not isinstance(notice, bool) and notice >= 0
    ):
        raise BadRequest("notice_seconds must be a number >= 0")
    noticed = h.server.simulator.reclaim(
        machine_ids=ids,
        region=body.get("region"),
        gpu_model=body.get("gpu_model"),
        gpus=gpus,
        notice=notice,
    )
    return 200, {"reclaimed": noticed}


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in [
        ("GET", "/v1/machines", _list),
        ("POST", "/v1/machines", _create),
        ("POST", "/v1/clusters", _create_cluster),
        ("GET", "/v1/clusters/(?P<request_id>[A-Za-z0-9_.-]+)", _cluster),
        ("GET", f"/v1/machines/{MACHINE}", _get),
        ("DELETE", f"/v1/machines/{MACHINE}", _action),
        ("POST", f"/v1/machines/{MACHINE}/(?P<action>start|stop|reboot|terminate)", _action),
        ("POST", f"/v1/machines/{MACHINE}/reclaim", _reclaim_machine),
        ("POST", f"/v1/machines/{MACHINE}/notice", _notice_machine),
        ("GET", "/v1/capacity", _capacity),
        ("GET", "/v1/volumes", _volume_list),
        ("POST", "/v1/volumes", _volume_create),
        ("GET", f"/v1/volumes/{VOLUME}", _volume_get),
        ("DELETE", f"/v1/volumes/{VOLUME}", _volume_delete),
        ("POST", f"/v1/volumes/{VOLUME}/resize", _volume_resize),
        ("GET", "/v1/storage", _storage),
        ("GET", "/v1/reservations", _reservations),
        ("PUT", f"/v1/reservations/{RESERVATION}", _reserve),
        ("DELETE", f"/v1/reservations/{RESERVATION}", _release),
        ("GET", "/v1/catalog", _catalog),
        ("GET", "/control/state", _state),
        ("POST", "/control/reset", _reset),
        ("GET", "/control/fleet", _catalog),
        ("PUT", "/control/fleet", _put_fleet),
        ("POST", "/control/faults", _faults),
        ("GET", "/control/demand", _get_demand),
        ("PUT", "/control/demand", _put_demand),
        ("POST", "/control/delays", _delays),
        ("POST", f"/control/machines/{MACHINE}/lose", _lose),
        ("POST", f"/control/machines/{MACHINE}/fail", _fail),
        ("POST", "/control/reclaim", _reclaim),
        ("POST", "/control/storage", _set_storage),
        ("POST", f"/control/volumes/{VOLUME}/lose", _lose_volume),
        ("POST", f"/control/machines/{MACHINE}/files", _write_file),
        ("GET", f"/control/machines/{MACHINE}/files", _read_file),
    ]
]


def _route(method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
    """The handler and its path parameters; `matched` tells 405 from 404."""
    matched = False
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match:
            matched = True
            if route_method == method:
                return handler, match.groupdict(), True
    return None, {}, matched
