"""Volumes on Slurm: directories on the cluster's shared storage, under a root the operator
configures (`SLURM_VOLUME_ROOT`, mounted at the same path on the compute nodes and on the hosts
that run the portal's workers).

A volume `v<12 hex>` is `<root>/<id>/data` (owned by the job user, mode 0700, where the driver
runs as root) and its record `<root>/<id>.json` (request id, name, region, size, state). A
size is the volume's size for quota and billing; the filesystem enforces it only where it has
directory (project) quotas, which this store does not set (plain local and NFS filesystems
have none): `detail` says so. A job attached to volumes gets `BACKFILL_VOLUMES` (one
`name:path` a line) and its script (instance.sh) bind-mounts each at `<base>/<name>`, where
`base` is `SLURM_VOLUME_MOUNT_BASE` (default `~/data`, the nearest to /data that a job without
root can mount; an operator who creates an empty /data on the nodes sets it to /data), inside
the instance's own mount namespace. The data survives the job: it is on the shared storage.

Every change takes an exclusive lock on `<root>/.lock` (fcntl), so two workers never make two
volumes for one request id.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import InvalidState, NotFound, PermanentError

VOLUME_ID = re.compile(r"^v[0-9a-f]{12}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NO_QUOTA = "size not enforced by the filesystem (no directory quotas)"


class VolumeStore:
    def __init__(self, root: str | os.PathLike[str], *, owner: str | None = None) -> None:
        self.root = Path(root)
        self.owner = owner

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".lock", "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except PermissionError as exc:
            raise PermanentError(f"the volume root {self.root} is not writable: {exc}") from exc

    def _record_path(self, volume_id: str) -> Path:
        if not VOLUME_ID.match(volume_id or ""):
            raise NotFound(f"no volume {volume_id!r}")
        return self.root / f"{volume_id}.json"

    def data_path(self, volume_id: str) -> Path:
        return self.root / volume_id / "data"

    def read(self, volume_id: str) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(self._record_path(volume_id).read_text())
            return record
        except FileNotFoundError:
            raise NotFound(f"no volume {volume_id!r}") from None

    def _write(self, record: dict[str, Any]) -> None:
        path = self._record_path(record["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)

    def all(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        records = []
        for path in sorted(self.root.glob("v*.json")):
            with contextlib.suppress(ValueError, OSError):
                records.append(json.loads(path.read_text()))
        return sorted(records, key=lambda r: (r.get("created", 0), r["id"]))

    def used_gb(self) -> int:
        return sum(r["size_gb"] for r in self.all() if r["state"] != "deleted")

    def create(
        self, *, request_id: str, region: str, size_gb: int, name: str, account: str | None
    ) -> tuple[dict[str, Any], bool]:
        for record in self.all():
            if record["request_id"] == request_id:
                return record, False
        volume_id = f"v{uuid.uuid4().hex[:12]}"
        data = self.data_path(volume_id)
        data.mkdir(parents=True, mode=0o700)
        if self.owner and os.geteuid() == 0:
            user = pwd.getpwnam(self.owner)
            os.chown(data.parent, user.pw_uid, user.pw_gid)
            os.chown(data, user.pw_uid, user.pw_gid)
        record = {
            "id": volume_id,
            "request_id": request_id,
            "name": name,
            "region": region,
            "size_gb": size_gb,
            "state": "available",
            "account": account,
            "created": time.time(),
            "detail": NO_QUOTA,
        }
        self._write(record)
        return record, True

    def resize(self, volume_id: str, size_gb: int) -> dict[str, Any]:
        record = self.read(volume_id)
        if record["state"] == "deleted":
            raise InvalidState(f"volume {volume_id} is deleted")
        if size_gb < record["size_gb"]:
            raise InvalidState(f"volume {volume_id} has {record['size_gb']} GB; it only grows")
        record["size_gb"] = size_gb
        self._write(record)
        return record

    def delete(self, volume_id: str) -> None:
        record = self.read(volume_id)
        if record["state"] == "deleted":
            return
        shutil.rmtree(self.root / volume_id, ignore_errors=True)
        record["state"] = "deleted"
        self._write(record)


def created_at(record: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(record.get("created") or 0), UTC)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise PermanentError("a volume name is 1 to 63 lower-case letters, digits, '.', '_' or '-'")
    return name
