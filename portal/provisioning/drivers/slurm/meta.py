"""What the driver keeps of an instance in its Slurm job's comment."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

COMMENT_TAG = "backfill:v1"


@dataclass(frozen=True)
class Meta:
    """An instance's metadata, URL-encoded in the job's comment (no spaces, no quotes).

    The driver writes the fields given at create; the job's script appends `port=` and `run=`
    once its SSH server listens (or `error=` when it gives up), by `scontrol update`.
    """

    request_id: str
    name: str
    instance_type: str
    region: str
    image: str
    preemptible: bool
    created: int = 0  # epoch seconds of the create (Slurm resets submit_time on a requeue)
    port: int | None = None
    run: int | None = None
    error: str = ""
    # A cluster (`nodes` > 0): one job on `nodes` Slurm nodes. Its script reports, for this
    # run, the Slurm node of each cluster node (`hosts`) and the port of each one's SSH server
    # (`ports`), in node order; `port` is the head's.
    nodes: int = 0
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    # The portal's reclaim (`reclaim(machine, at)`): the epoch second the job ends, written
    # by the driver; `reclaimed` by the job's script when it ended itself at that second.
    reclaim: int = 0
    reclaimed: bool = False
    # Ids of the volumes attached at create (directories of the volume store, volumes.py).
    volumes: tuple[str, ...] = ()

    def encode(self) -> str:
        fields = {
            "rid": self.request_id,
            "type": self.instance_type,
            "region": self.region,
            "image": self.image,
            "pre": "1" if self.preemptible else "0",
            "name": self.name,
            "at": str(self.created),
        }
        if self.nodes:
            fields["nodes"] = str(self.nodes)
        if self.volumes:
            fields["vol"] = ".".join(self.volumes)
        return f"{COMMENT_TAG}?{urlencode(fields)}"

    @classmethod
    def decode(cls, comment: str | None) -> Meta | None:
        """The metadata of a job's comment; None when the job is not one of the driver's."""
        if not comment or not comment.startswith(COMMENT_TAG + "?"):
            return None
        fields = dict(parse_qsl(comment[len(COMMENT_TAG) + 1 :], keep_blank_values=True))
        try:
            return cls(
                request_id=fields["rid"],
                name=fields.get("name", ""),
                instance_type=fields["type"],
                region=fields["region"],
                image=fields.get("image", ""),
                preemptible=fields.get("pre") == "1",
                created=int(fields.get("at") or 0),
                port=int(fields["port"]) if fields.get("port") else None,
                run=int(fields["run"]) if fields.get("run") else None,
                error=fields.get("error", ""),
                nodes=int(fields.get("nodes") or 0),
                hosts=tuple(h for h in fields.get("hosts", "").split(".") if h),
                ports=tuple(int(p) for p in fields.get("ports", "").split(".") if p),
                reclaim=int(fields.get("reclaim") or 0),
                reclaimed=fields.get("reclaimed") == "1",
                volumes=tuple(v for v in fields.get("vol", "").split(".") if v),
            )
        except (KeyError, ValueError):
            return None


def with_field(comment: str, key: str, value: str) -> str:
    """The comment with `key=value` set (replaced if there), the rest kept as it is."""
    tag, _, query = comment.partition("?")
    fields = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != key]
    return f"{tag}?{urlencode([*fields, (key, value)])}"
