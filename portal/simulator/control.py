"""Client of the simulator's /control API, for tests, demos and the operator's scripts."""

from __future__ import annotations

from typing import Any

import requests


class ControlError(RuntimeError):
    pass


class ControlClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/control/{path}", json=payload, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise ControlError(f"{method} /control/{path}: {response.status_code} {response.text}")
        return response.json()

    def state(self) -> dict[str, Any]:
        """Machines with their nodes, used GPUs per node, fleet, delays, faults and stats."""
        return self._call("GET", "state")

    def reset(self, catalog: dict[str, Any] | None = None) -> None:
        """No machines, no faults, the start-up delays, and the given or start-up fleet."""
        self._call("POST", "reset", {"catalog": catalog} if catalog is not None else {})

    def set_fleet(self, catalog: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", "fleet", catalog)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """E.g. `error_rate=0.2`, `error_next=2`, `slow_next=1, slow_seconds=3`."""
        return self._call("POST", "faults", faults)

    def set_delays(self, **delays: float) -> dict[str, Any]:
        """Seconds: provision, start, stop, reboot, terminate, jitter, reclaim_notice."""
        return self._call("POST", "delays", delays)

    def set_demand(self, **demand: Any) -> dict[str, Any]:
        """Internal demand: `curves=[{"region", "gpu_model", "trough", "peak", "peak_hour",
        "bursts_per_day", "burst_size", "burst_minutes"} | {"region", "gpu_model", "gpus"}]`,
        `seed=`, `day_seconds=` (a simulated day in that many real seconds), `start_hour=`."""
        return self._call("PUT", "demand", demand)

    def demand(self) -> dict[str, Any]:
        return self._call("GET", "demand")

    def interruption(self, machine_id: str) -> dict[str, Any] | None:
        """GET /metadata/<machine>/interruption, as the machine's processes would (no token)."""
        response = requests.get(
            f"{self.base_url}/metadata/{machine_id}/interruption", timeout=self.timeout
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ControlError(f"metadata of {machine_id}: {response.status_code}")
        return response.json()

    def lose(self, machine_id: str) -> None:
        self._call("POST", f"machines/{machine_id}/lose")

    def fail(self, machine_id: str, detail: str = "hardware fault") -> dict[str, Any]:
        return self._call("POST", f"machines/{machine_id}/fail", {"detail": detail})

    def reclaim(self, **selection: Any) -> list[dict[str, Any]]:
        """Internal demand rises: `machine_ids=[...]` or `region=, gpu_model=, gpus=`, and
        optionally `notice_seconds=`. Returns the machines that got a reclaim notice."""
        return self._call("POST", "reclaim", selection)["reclaimed"]

    def set_shared_volumes(self, shared: bool) -> None:
        """Whether a volume may be attached to several live machines at once."""
        self._call("POST", "storage", {"shared_volumes": shared})

    def lose_volume(self, volume_id: str) -> None:
        self._call("POST", f"volumes/{volume_id}/lose")

    def write_file(self, machine_id: str, path: str, content: str) -> None:
        """As a program on the running machine: write `content` to `path` (under a volume's
        mount path, `/data/<name>/...`, it lands in the volume)."""
        self._call("POST", f"machines/{machine_id}/files", {"path": path, "content": content})

    def read_file(self, machine_id: str, path: str) -> str:
        response = self.session.get(
            f"{self.base_url}/control/machines/{machine_id}/files",
            params={"path": path},
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            raise ControlError(
                f"read {path} on {machine_id}: {response.status_code} {response.text}"
            )
        return str(response.json()["content"])
