"""The `slurm` driver: machines are long-running Slurm jobs, driven through slurmrestd.

Talks to slurmrestd's `v0.0.38` API (Slurm 22.05) over HTTP with JWT in proxy mode, through the
shared transport (time-outs, retries on transient errors). docs/slurm.md has the whole picture;
in short:

An instance is one batch job named `<prefix><request id>` (prefix "bf-") that holds the instance
type's GPUs as gres (`gpu:h100:2`), with `CUDA_VISIBLE_DEVICES` set by Slurm, in the partition
named after the region, charged to the organization's Slurm account, in QOS `low` when
preemptible. The job runs Debian's dropbear on a free port of its node, accepting exactly the
instance's SSH keys: the keys are written into the job's own directory, bind-mounted over
`~/.ssh` in a private mount namespace (an unprivileged user namespace), so instances of the same
Unix user never see each other's keys. Once dropbear listens, the job reports its port by adding
`port=` to its own comment (`scontrol update`); `get()` returns the node's address as `ip`, the
port in `ssh_port` (and in `detail`) and the Unix user in `ssh_user`. Each organization's Slurm
account mirrors its GPU quota as GrpTRES (the `QuotaMirroringBackend` capability).

The modules, one concern each:

- `backend`: `SlurmBackend`, the interface mapped onto jobs (create, get, stop, ...);
- `client`: slurmrestd calls, the service token, Slurm's error numbers as the interface's errors;
- `meta`: what the driver keeps in a job's comment;
- `states`: a job read as a machine (state, detail, address, port);
- `capacity`: instance types as GPU shapes, and free GPUs from the nodes;
- `accounts`: organizations' Slurm accounts and their GPU limits (GrpTRES);
- `jobscript` and `instance.sh`: the batch script of an instance.

Limits: a stop loses everything but the job (processes, files outside shared storage, the node,
the port: a started instance may come back on another node and port); a started instance waits
in "starting" for free GPUs rather than failing; a create racing another for the last GPUs may
wait in "provisioning" (waiting for capacity) instead of getting `CapacityError`; Slurm forgets
ended jobs after MinJobAge (300 s), after which `get()` says `NotFound`.
"""

from .backend import SlurmBackend
from .capacity import InstanceShape
from .client import API, DB_API, SlurmClient
from .jobscript import job_script
from .meta import Meta

__all__ = ["API", "DB_API", "InstanceShape", "Meta", "SlurmBackend", "SlurmClient", "job_script"]
