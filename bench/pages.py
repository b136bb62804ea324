"""Pages under load: gunicorn on loopback, wrk as a logged-in user, p95 against two floors.

gunicorn: 2 sync workers (one request at a time each) with bench/settings.py; wrk: 2 threads,
4 connections, a fixed duration per page after a short warm-up, on the same machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.test import Client

from bench.provisioning import cpu_seconds, process_tree
from bench.queries import main_pages
from bench.results import REPO, Results, Row
from bench.seed import Seeded

PORT = int(os.environ.get("BENCH_GUNICORN_PORT", "8600"))
BASE = f"http://127.0.0.1:{PORT}"
DURATION = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
WARMUP = 2
CONNECTIONS = 4
THREADS = 2
WORKERS = 2
FLOOR_URL = "/bench/floor/"
LOADED = [
    "instance list",
    "instance detail",
    "billing overview",
    "dashboard",
    "SSH keys",
    "quotas",
    "audit",
]
LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


@dataclass
class Load:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_ms_per_request: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        errors = self.status_errors + self.socket_errors
        return (
            f"{self.rps:.0f} req/s, p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms"
            + (f", CPU {self.cpu_ms_per_request:.1f} ms/request" if self.cpu_ms_per_request else "")
            + (f", {errors} errors" if errors else "")
        )


def wrk_path() -> str | None:
    found = shutil.which("wrk")
    if found or os.geteuid() != 0:
        return found
    print("==> installing Debian's wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)  # noqa: S607
    return shutil.which("wrk")


def session_cookie(seeded: Seeded) -> str:
    client = Client()
    client.force_login(seeded.owner)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Gunicorn:
    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "portal.wsgi:application",
                "--config",
                str(REPO / "bench" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{PORT}",
                "--workers",
                str(WORKERS),
                "--worker-class",
                "sync",
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{BASE}/bench/constant/", timeout=10):  # noqa: S310
                    return self
            except OSError:  # refused while it starts, or slow on a busy machine
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not start; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User and system CPU of the master and its workers so far (from /proc)."""
        assert self.process is not None
        return sum(cpu_seconds(pid) for pid in process_tree(self.process.pid))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def check(url: str, cookie: str | None) -> None:
    """The page answers 200 to this session (not a redirect to the login page)."""
    request = urllib.request.Request(BASE + url, headers={"Cookie": cookie} if cookie else {})  # noqa: S310
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}, not 200")


def load(wrk: str, url: str, cookie: str | None, seconds: int) -> Load:
    args = [
        wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout", "10s",
        "-s", str(REPO / "bench" / "wrk_report.lua"),
        *(["-H", f"Cookie: {cookie}"] if cookie else []),
        BASE + url,
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout  # noqa: S603
    match = LINE.search(out)
    if match is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    values = dict(pair.split("=") for pair in match.group(1).split())
    return Load(
        requests=int(values["requests"]),
        seconds=int(values["duration_us"]) / 1e6,
        status_errors=int(values["status_errors"]),
        socket_errors=int(values["socket_errors"]),
        p50_ms=int(values["p50"]) / 1000,
        p95_ms=int(values["p95"]) / 1000,
        p99_ms=int(values["p99"]) / 1000,
    )


def measured_load(
    server: Gunicorn, wrk: str, url: str, cookie: str | None, seconds: int, *, warmup: int = WARMUP
) -> Load:
    """wrk on `url` for `seconds` after `warmup` seconds of it (none if 0), with the workers'
    CPU per request."""
    if warmup:
        check(url, cookie)
        load(wrk, url, cookie, warmup)
    cpu_before = server.cpu_seconds()
    measured = load(wrk, url, cookie, seconds)
    if measured.requests:
        spent = server.cpu_seconds() - cpu_before
        measured.cpu_ms_per_request = spent * 1000 / measured.requests
    return measured


def page_and_floor(
    server: Gunicorn,
    wrk: str,
    page: tuple[str, str | None],
    floor_cookie: str,
    *,
    seconds: int,
    floor_seconds: int,
    warmup: int = WARMUP,
) -> tuple[Load, Load]:
    """A page (url, cookie) under load, and the authenticated floor measured around it:
    `floor_seconds` just before and just after (`around`)."""
    before = measured_load(server, wrk, FLOOR_URL, floor_cookie, floor_seconds, warmup=0)
    measured = measured_load(server, wrk, *page, seconds, warmup=warmup)
    after = measured_load(server, wrk, FLOOR_URL, floor_cookie, floor_seconds, warmup=0)
    return measured, around(before, after)


def around(before: Load, after: Load) -> Load:
    """The floor around a page: the mean of its latencies before and after, and its CPU per
    request over both."""
    requests = before.requests + after.requests
    cpu = [m.cpu_ms_per_request * m.requests for m in (before, after) if m.cpu_ms_per_request]
    return Load(
        requests=requests,
        seconds=before.seconds + after.seconds,
        status_errors=before.status_errors + after.status_errors,
        socket_errors=before.socket_errors + after.socket_errors,
        p50_ms=(before.p50_ms + after.p50_ms) / 2,
        p95_ms=(before.p95_ms + after.p95_ms) / 2,
        p99_ms=(before.p99_ms + after.p99_ms) / 2,
        cpu_ms_per_request=sum(cpu) / requests if len(cpu) == 2 and requests else None,
    )


def run(results: Results, *, seeded: Seeded, log_dir: Path) -> None:
    wrk = wrk_path()
    if wrk is None:
        results.note("pages under load skipped: wrk is not installed (apt-get install wrk)")
        return
    cookie = session_cookie(seeded)
    pages = main_pages(seeded)
    targets: list[tuple[str, str, str | None]] = [
        ("constant (no auth, no DB)", "/bench/constant/", None),
        ("authenticated floor", FLOOR_URL, cookie),
        *[(name, pages[name], cookie) for name in LOADED],
    ]
    server = Gunicorn(log_dir / "gunicorn.log").start()
    try:
        loads: dict[str, Load] = {}
        floors: dict[str, Load] = {}  # the floor measured around each page
        for name, url, with_cookie in targets:
            if name not in LOADED:
                loads[name] = measured_load(server, wrk, url, with_cookie, DURATION)
                continue
            loads[name], floors[name] = page_and_floor(
                server,
                wrk,
                (url, with_cookie),
                cookie,
                seconds=DURATION,
                floor_seconds=DURATION // 2,
            )
    finally:
        server.stop()
    constant = loads["constant (no auth, no DB)"]
    setup = (
        f"gunicorn {WORKERS} sync workers, wrk {THREADS} threads {CONNECTIONS} connections "
        f"{DURATION} s per page; each page's ratios against the floor measured {DURATION // 2} s "
        f"before it and {DURATION // 2} s after it (the mean of the two), so that the machine's "
        "drift during the run moves page and floor alike"
    )
    results.note(f"pages under load: {setup}, on the same machine as the server")
    for name in ["constant (no auth, no DB)", "authenticated floor"]:
        results.add(Row(section="pages under load", name=name, figure=loads[name].describe()))
    for name in LOADED:
        page, floor = loads[name], floors[name]
        # p50 moves less than p95 on a busy machine, and the workers' CPU per request less
        # than either: three views of the same page against the floor measured around it.
        for quantile, page_ms, floor_ms, target in [
            ("p50", page.p50_ms, floor.p50_ms, 1.5),
            ("p95", page.p95_ms, floor.p95_ms, 2.0),
        ]:
            ratio = page_ms / floor_ms if floor_ms else None
            results.add(
                Row(
                    section="pages under load",
                    name=f"{name} {quantile} / authenticated floor {quantile}",
                    figure=page.describe() if quantile == "p50" else f"{quantile} {page_ms:.1f} ms",
                    baseline=f"floor {quantile} {floor_ms:.1f} ms, around it",
                    ratio=ratio,
                    target=f"≤ {target:g}x",
                    met=ratio is not None and ratio <= target,
                )
            )
        if page.cpu_ms_per_request and floor.cpu_ms_per_request:
            results.add(
                Row(
                    section="pages under load",
                    name=f"{name} CPU per request / floor's",
                    figure=f"{page.cpu_ms_per_request:.1f} ms of gunicorn CPU per request",
                    baseline=f"floor {floor.cpu_ms_per_request:.1f} ms",
                    ratio=page.cpu_ms_per_request / floor.cpu_ms_per_request,
                )
            )
        ratio_constant = page.p95_ms / constant.p95_ms if constant.p95_ms else None
        results.add(
            Row(
                section="pages under load",
                name=f"{name} p95 / constant p95",
                figure=f"p95 {page.p95_ms:.1f} ms",
                baseline=f"constant p95 {constant.p95_ms:.1f} ms",
                ratio=ratio_constant,
            )
        )
