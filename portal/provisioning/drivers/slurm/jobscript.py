"""The batch script of an instance: `instance.sh` beside this module, with its keys and ports.

The script runs dropbear on a free port of its node with exactly the instance's keys, until the
job is cancelled. Signals: USR1 = stop (requeue held), USR2 = reboot (kill the instance's
processes, start dropbear again), TERM = a preemption notice (keep serving until the grace time
ends). It reports its port (`port=`, `run=`) or its error (`error=`) in the job's comment.

`instance.sh` holds three placeholders, filled in here: `@PORT_LOW@` and `@PORT_HIGH@` (the
range the SSH server may use) and `@SSH_KEYS@` (one key a line, in a quoted here-document).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

from ...errors import PermanentError


@cache
def template(name: str = "instance.sh") -> str:
    package = __name__.rpartition(".")[0]
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def job_script(ssh_keys: list[str], ports: tuple[int, int], *, cluster: bool = False) -> str:
    """The script of an instance (or, with `cluster`, of a cluster's job: `cluster.sh`, an SSH
    server on every node) with these keys (checked by `clean_keys`) and SSH ports."""
    low, high = ports
    return (
        template("cluster.sh" if cluster else "instance.sh")
        .replace("@PORT_LOW@", str(int(low)))
        .replace("@PORT_HIGH@", str(int(high)))
        .replace("@SSH_KEYS@", "\n".join(ssh_keys))
    )


def clean_keys(ssh_keys: Iterable[str]) -> list[str]:
    """The keys stripped, each on one line (a line break would end the here-document)."""
    keys = [key.strip() for key in ssh_keys if key and key.strip()]
    for key in keys:
        if "\n" in key or "\r" in key or "\0" in key:
            raise PermanentError("an SSH key spans several lines")
    if not keys:
        raise PermanentError("an instance needs at least one SSH key")
    return keys
