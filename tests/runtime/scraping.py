"""Reading /metrics in tests: scrape through the test client, and pick out one series."""

import re

from prometheus_client import REGISTRY

TOKEN = "metrics-token-0123456789abcdef"


def scraper(client, settings):
    """A function that GETs /metrics with the token (configured here) and returns the text."""
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []

    def get() -> str:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        return response.content.decode()

    return get


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in an exposition (labels in any order)."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return None


def counted(name: str, **labels: str) -> float:
    """This process's value of a counter (0 before its first increment)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
