"""The `backfill` command: instances, quotas, prices, usage and invoices from a terminal."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from backfill_cli import __version__, config, output
from backfill_cli.client import (
    EXIT_CODES,
    FAILED,
    NOT_FOUND,
    NOT_REACHED,
    NOT_SIGNED_IN,
    REFUSED,
    USAGE,
    Client,
    CliError,
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class QuotaKind(StrEnum):
    on_demand = "on_demand"
    preemptible = "preemptible"


class FileFormat(StrEnum):
    pdf = "pdf"
    csv = "csv"


EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())

app = typer.Typer(
    name="backfill",
    help="Rent and run GPU instances on Backfill from your terminal.\n\n"
    "Sign in once with `backfill login` (a token from your organization's API page); "
    "every command then acts in that token's organization.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
instances_app = typer.Typer(help="List, launch, stop, start, terminate and reach instances.")
quotas_app = typer.Typer(help="Your GPU limits, and requests for more.")
invoices_app = typer.Typer(help="List invoices and download them (PDF or CSV).")
keys_app = typer.Typer(help="SSH keys that instances can be launched with.")
clusters_app = typer.Typer(help="Clusters of instances (where the server offers them).")
volumes_app = typer.Typer(help="Storage volumes (where the server offers them).")
for sub, name in (
    (instances_app, "instances"),
    (quotas_app, "quotas"),
    (invoices_app, "invoices"),
    (keys_app, "ssh-keys"),
    (clusters_app, "clusters"),
    (volumes_app, "volumes"),
):
    sub.info.no_args_is_help = True
    sub.info.epilog = EPILOG
    app.add_typer(sub, name=name)


class State:
    """What the global options decided, for every command."""

    def __init__(self, url: str | None, token: str | None, output_format: str):
        saved = config.load()
        self.url = url or (saved.url if saved else config.DEFAULT_URL)
        self.token = token or (saved.token if saved else None)
        self.json = output_format == "json"

    def client(self) -> Client:
        return Client(self.url, self.token)


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"backfill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="BACKFILL_URL",
            help="The Backfill server, e.g. https://backfill.example.com (default: the one "
            "you logged in to).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="BACKFILL_TOKEN",
            help="An API token (default: the one saved by `backfill login`).",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--output",
            "-o",
            envvar="BACKFILL_OUTPUT",
            help="table for people, json for scripts.",
        ),
    ] = OutputFormat.table,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    ctx.obj = State(url, token, output_format.value)


# --- signing in ---------------------------------------------------------------------------------


@app.command()
def login(
    ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The token (bf_…). Left out, it is asked for without echo; `-` reads it from "
            "stdin.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check an API token and save it (mode 0600) in your config directory."""
    current = state(ctx)
    if token == "-":
        token = sys.stdin.readline().strip()
    elif token is None:
        token = ctx.find_root().params.get("token")
    if not token:
        if not sys.stdin.isatty():
            raise CliError("Give the token with --token (or --token - to read stdin).", USAGE)
        token = typer.prompt("API token (from your organization's API page)", hide_input=True)
    token = token.strip()
    whoami = Client(current.url, token).get("/token/")
    path = config.save(config.Credentials(url=current.url, token=token))
    if current.json:
        output.as_json({**whoami, "saved_to": str(path)})
        return
    output.note(
        f"Signed in to {whoami['organization']['name']} as {whoami['user']} "
        f"({whoami['role']}) on {current.url}. Token saved in {path}."
    )


@app.command()
def logout() -> None:
    """Forget the saved token (revoke it on the API page to stop it everywhere)."""
    if config.forget():
        output.note(f"Signed out; {config.credentials_path()} removed.")
    else:
        output.note("You were not signed in.")


@app.command()
def whoami(ctx: typer.Context) -> None:
    """The token in use, its organization and your role."""
    current = state(ctx)
    body = current.client().get("/token/")
    if current.json:
        output.as_json(body)
        return
    output.record(
        {**body, "server": current.url},
        [
            ("Organization", "organization.name"),
            ("You", "user"),
            ("Role", "role"),
            ("Token", "token.name"),
            ("Prefix", "token.prefix"),
            ("Expires", "token.expires_at"),
            ("Server", "server"),
        ],
    )


# --- instances ----------------------------------------------------------------------------------

INSTANCE_COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("TYPE", "instance_type"),
    ("REGION", "region"),
    ("IP", "ip"),
    ("$/HOUR", "hourly_price"),
    ("LAUNCHED", "launched_at"),
]
INSTANCE_FIELDS = [
    ("ID", "id"),
    ("Name", "name"),
    ("State", "state"),
    ("Reason", "state_reason"),
    ("Type", "instance_type"),
    ("GPUs", "gpus"),
    ("Region", "region"),
    ("Image", "image"),
    ("Preemptible", "preemptible"),
    ("IP", "ip"),
    ("SSH", "ssh_command"),
    ("Price per hour", "hourly_price"),
    ("Cost so far", "cost_so_far"),
    ("Can", "actions"),
    ("Launched by", "created_by"),
    ("Launched", "launched_at"),
]
# States an instance passes through on its way to each end state.
ON_THE_WAY = {
    "running": {"pending", "provisioning", "starting", "rebooting"},
    "stopped": {"stopping", "running"},
    "terminated": {"terminating", "running", "stopped", "stopping", "pending", "provisioning"},
}
TERMINAL = {"terminated", "failed", "interrupted"}


def _instance_id(client: Client, ref: str) -> int:
    """An instance by id, or by name among the live ones."""
    if re.fullmatch(r"\d{1,18}", ref):
        return int(ref)
    matches = [
        i for i in client.pages("/instances/") if i["name"] == ref and i["state"] not in TERMINAL
    ]
    if not matches:
        raise CliError(f"No live instance is named {ref!r}.", NOT_FOUND)
    if len(matches) > 1:
        ids = ", ".join(str(i["id"]) for i in matches)
        raise CliError(f"Several instances are named {ref!r} ({ids}); give an id.", USAGE)
    return matches[0]["id"]


def _show_instance(current: State, instance: dict) -> None:
    if current.json:
        output.as_json(instance)
    else:
        output.record(instance, INSTANCE_FIELDS)


@instances_app.command("list")
def instances_list(
    ctx: typer.Context,
    state_filter: Annotated[
        str | None, typer.Option("--state", help="Only this state, e.g. running.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Terminated ones too.")] = False,
) -> None:
    """Instances of the organization, newest first (terminated ones with --all)."""
    current = state(ctx)
    rows = [
        i
        for i in current.client().pages("/instances/", state=state_filter, region=region)
        if all_ or state_filter or i["state"] not in TERMINAL
    ]
    if current.json:
        output.as_json(rows)
        return
    output.table(
        rows, INSTANCE_COLUMNS, empty="No instances. Launch one: backfill instances launch"
    )


@instances_app.command("show")
def instances_show(
    ctx: typer.Context, instance: Annotated[str, typer.Argument(help="Id or name.")]
) -> None:
    """One instance: state, address, SSH command, price and cost so far."""
    current = state(ctx)
    client = current.client()
    _show_instance(current, client.get(f"/instances/{_instance_id(client, instance)}/"))


def _wait(
    client: Client, current: State, instance: dict, target: str, timeout: float, every: float
) -> dict:
    """Poll until the instance is in `target`; a live line on a terminal, a line per state
    otherwise. Raises CliError(NOT_REACHED) if it ends elsewhere or time runs out."""
    started = time.monotonic()
    name, pk = instance["name"], instance["id"]
    last_state = None
    status = None
    if output.err.is_terminal:
        status = output.err.status("", spinner="dots")
        status.start()
    try:
        while True:
            now_state = instance["state"]
            elapsed = time.monotonic() - started
            line = f"{name} (#{pk}): {now_state} after {elapsed:.0f} s"
            if status is not None:
                status.update(line)
            elif now_state != last_state:
                output.note(line)
            last_state = now_state
            if now_state == target:
                return instance
            if now_state not in ON_THE_WAY.get(target, set()) or now_state in TERMINAL:
                reason = f": {instance['state_reason']}" if instance.get("state_reason") else ""
                raise CliError(f"{name} (#{pk}) is {now_state}, not {target}{reason}", NOT_REACHED)
            if elapsed > timeout:
                raise CliError(
                    f"{name} (#{pk}) is still {now_state} after {timeout:g} s; "
                    f"see `backfill instances show {pk}`.",
                    NOT_REACHED,
                )
            time.sleep(every)
            instance = client.get(f"/instances/{pk}/")
    finally:
        if status is not None:
            status.stop()
        if last_state == target and not current.json:
            output.note(f"{name} (#{pk}) is {target} ({time.monotonic() - started:.0f} s).")


WAIT_HELP = "Wait (with a live progress line) until it is there."
TIMEOUT_HELP = "Give up waiting after this many seconds (exit code 8)."
POLL = float(os.environ.get("BACKFILL_POLL_INTERVAL", "2"))


@instances_app.command("launch")
def instances_launch(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for it, unique among your live ones.")],
    instance_type: Annotated[
        str, typer.Option("--type", "-t", help="Instance type, e.g. gpu_1x_h100 (backfill prices).")
    ],
    region: Annotated[str, typer.Option("--region", "-r", help="Region, e.g. us-east-1.")],
    image: Annotated[
        str | None,
        typer.Option(help="Image code (default: the first image the server lists)."),
    ] = None,
    ssh_key: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh-key",
            "-k",
            help="SSH key id or name, repeatable (default: your only key, if you have one).",
        ),
    ] = None,
    preemptible: Annotated[
        bool, typer.Option(help="Cheaper; the operator may reclaim it with notice.")
    ] = False,
    max_price: Annotated[
        str | None,
        typer.Option(
            "--max-price",
            help="Preemptible: the most it may cost per hour, e.g. 1.25 (default: the "
            "on-demand price). Reclaimed with notice if the spot price rises above it.",
        ),
    ] = None,
    volume: Annotated[
        list[str] | None,
        typer.Option(
            "--volume",
            "-v",
            help="Volume id or name (same region) to attach at /data/<name>, repeatable.",
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help=WAIT_HELP)] = False,
    timeout: Annotated[float, typer.Option(help=TIMEOUT_HELP)] = 900,
) -> None:
    """Launch an instance; with --wait, until it is running (then the SSH command)."""
    current = state(ctx)
    client = current.client()
    if image is None:
        images = client.get("/images/")
        if not images:
            raise CliError("The server lists no images.", FAILED)
        image = images[0]["code"]
    keys = client.get("/ssh-keys/")
    if ssh_key:
        by_name = {k["name"]: k["id"] for k in keys}
        key_ids = []
        for ref in ssh_key:
            if ref.isdigit():
                key_ids.append(int(ref))
            elif ref in by_name:
                key_ids.append(by_name[ref])
            else:
                raise CliError(f"No SSH key is named {ref!r} (backfill ssh-keys list).", USAGE)
    elif len(keys) == 1:
        key_ids = [keys[0]["id"]]
    else:
        raise CliError(
            "Say which SSH key to put on it: --ssh-key NAME (backfill ssh-keys list)"
            if keys
            else "Add an SSH key first: backfill ssh-keys add NAME --file ~/.ssh/id_ed25519.pub",
            USAGE,
        )
    body = {
        "name": name,
        "instance_type": instance_type,
        "region": region,
        "image": image,
        "ssh_key_ids": key_ids,
        "preemptible": preemptible,
    }
    if max_price is not None:
        body["max_price_per_hour"] = max_price
    if volume:
        body["volume_ids"] = _volume_ids(client, volume, region)
    instance = client.post("/instances/", body, idempotent=True)
    if not current.json:
        output.note(f"Launched {instance['name']} (#{instance['id']}), {instance['state']}.")
    if wait:
        instance = _wait(client, current, instance, "running", timeout, POLL)
        if not current.json and instance.get("ssh_command"):
            output.note("Connect with:")
            output.out.print(instance["ssh_command"], markup=False, highlight=False)
            return
    _show_instance(current, instance)


def _action(ctx: typer.Context, ref: str, action: str, target: str, wait: bool, timeout: float):
    current = state(ctx)
    client = current.client()
    pk = _instance_id(client, ref)
    instance = client.post(f"/instances/{pk}/{action}/")
    if not current.json:
        output.note(f"{instance['name']} (#{pk}): {action} asked, now {instance['state']}.")
    if wait:
        instance = _wait(client, current, instance, target, timeout, POLL)
    if current.json:
        output.as_json(instance)


@instances_app.command("max-price")
def instances_max_price(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="Id or name.")],
    price: Annotated[
        str, typer.Argument(help="Per hour, e.g. 1.50; 'on-demand' for the on-demand price.")
    ],
) -> None:
    """Change a preemptible instance's max price per hour (raising it during a price
    reclaim's notice cancels the reclaim)."""
    current = state(ctx)
    client = current.client()
    pk = _instance_id(client, instance)
    value = None if price == "on-demand" else price
    result = client.post(f"/instances/{pk}/max-price/", {"max_price_per_hour": value})
    if not current.json:
        shown = result.get("max_price_per_hour") or "the on-demand price"
        output.note(f"{result['name']} (#{pk}): max price per hour now {shown}.")
    _show_instance(current, result)


@instances_app.command("stop")
def instances_stop(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="Id or name.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help=WAIT_HELP)] = False,
    timeout: Annotated[float, typer.Option(help=TIMEOUT_HELP)] = 600,
) -> None:
    """Stop a running instance (its GPUs are released; its disk stays, and is billed)."""
    _action(ctx, instance, "stop", "stopped", wait, timeout)


@instances_app.command("start")
def instances_start(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="Id or name.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help=WAIT_HELP)] = False,
    timeout: Annotated[float, typer.Option(help=TIMEOUT_HELP)] = 900,
) -> None:
    """Start a stopped instance."""
    _action(ctx, instance, "start", "running", wait, timeout)


@instances_app.command("terminate")
def instances_terminate(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="Id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: Annotated[bool, typer.Option("--wait", "-w", help=WAIT_HELP)] = False,
    timeout: Annotated[float, typer.Option(help=TIMEOUT_HELP)] = 600,
) -> None:
    """Terminate an instance: the machine and its disk are destroyed, billing ends."""
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("Terminating destroys the disk: add --yes to confirm.", USAGE)
        typer.confirm(f"Terminate {instance}? Its disk is destroyed", abort=True)
    _action(ctx, instance, "terminate", "terminated", wait, timeout)


@instances_app.command("ssh")
def instances_ssh(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="Id or name.")],
    exec_: Annotated[
        bool, typer.Option("--exec", help="Run ssh now instead of printing the command.")
    ] = False,
) -> None:
    """Print the SSH command of a running instance (or run it with --exec)."""
    current = state(ctx)
    client = current.client()
    body = client.get(f"/instances/{_instance_id(client, instance)}/")
    command = body.get("ssh_command") or ""
    if not command:
        raise CliError(
            f"{body['name']} (#{body['id']}) has no address yet: it is {body['state']}.", REFUSED
        )
    if exec_:
        argv = shlex.split(command)
        os.execvp(argv[0], argv)  # noqa: S606 - the user asked to run ssh
    if current.json:
        output.as_json({"id": body["id"], "name": body["name"], "ssh_command": command})
    else:
        output.out.print(command, markup=False, highlight=False)


# --- SSH keys -----------------------------------------------------------------------------------


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """SSH keys you can launch with: yours and the organization's shared ones."""
    current = state(ctx)
    rows = current.client().get("/ssh-keys/")
    if current.json:
        output.as_json(rows)
        return
    output.table(
        rows,
        [
            ("ID", "id"),
            ("NAME", "name"),
            ("TYPE", "key_type"),
            ("FINGERPRINT", "fingerprint"),
            ("SHARED", "shared"),
        ],
        empty="No SSH keys. Add one: backfill ssh-keys add NAME --file ~/.ssh/id_ed25519.pub",
    )


@keys_app.command("add")
def keys_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the key.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The .pub file.")],
    shared: Annotated[
        bool, typer.Option(help="For the whole organization (owners, admins).")
    ] = False,
) -> None:
    """Add a public SSH key."""
    current = state(ctx)
    try:
        public_key = file.read_text().strip()
    except OSError as exc:
        raise CliError(f"Cannot read {file}: {exc.strerror}.", USAGE) from None
    key = current.client().post(
        "/ssh-keys/", {"name": name, "public_key": public_key, "shared": shared}, idempotent=True
    )
    if current.json:
        output.as_json(key)
    else:
        output.note(f"Added {key['name']} (#{key['id']}, {key['fingerprint']}).")


# --- quotas -------------------------------------------------------------------------------------


@quotas_app.command("list")
def quotas_list(ctx: typer.Context) -> None:
    """GPU limits per region and GPU model, and what is used of them."""
    current = state(ctx)
    rows = current.client().get("/quotas/")
    if current.json:
        output.as_json(rows)
        return
    for row in rows:
        for kind in ("on_demand", "preemptible"):
            row[f"{kind}_text"] = f"{row[kind]['used']} of {row[kind]['limit']}"
    output.table(
        rows,
        [
            ("REGION", "region"),
            ("GPU", "gpu_model"),
            ("ON-DEMAND USED", "on_demand_text"),
            ("PREEMPTIBLE USED", "preemptible_text"),
            ("OPEN REQUESTS", "open_requests"),
        ],
        empty="No GPU limits yet. Ask for some: backfill quotas request",
    )


@quotas_app.command("request")
def quotas_request(
    ctx: typer.Context,
    region: Annotated[str, typer.Option("--region", "-r", help="Region code.")],
    gpu_model: Annotated[str, typer.Option("--gpu", "-g", help="GPU model code, e.g. h100.")],
    limit: Annotated[int, typer.Option(help="The new limit in GPUs (not an increment).")],
    justification: Annotated[
        str, typer.Option("--why", help="What will run, for how long, and why this many GPUs.")
    ],
    kind: Annotated[QuotaKind, typer.Option(help="Which limit.")] = QuotaKind.on_demand,
) -> None:
    """Ask the operator for a new GPU limit (owners and admins)."""
    current = state(ctx)
    body = current.client().post(
        "/quota-requests/",
        {
            "region": region,
            "gpu_model": gpu_model,
            "kind": kind.value,
            "requested_limit": limit,
            "justification": justification,
        },
        idempotent=True,
    )
    if current.json:
        output.as_json(body)
    else:
        output.note(
            f"Request #{body['id']} for {body['requested_limit']} {body['gpu_model']} GPUs in "
            f"{body['region']} ({body['kind']}): {body['state']}."
        )


# --- prices, usage, invoices --------------------------------------------------------------------


@app.command()
def prices(
    ctx: typer.Context,
    history: Annotated[
        bool, typer.Option("--history", help="Every price, past and announced, newest first.")
    ] = False,
    instance_type: Annotated[
        str | None, typer.Option("--type", "-t", help="Only this instance type.")
    ] = None,
    spot: Annotated[
        bool,
        typer.Option(
            "--spot", help="Spot prices per region now (with --history: their changes, 7 days)."
        ),
    ] = False,
    region: Annotated[
        str | None, typer.Option("--region", "-r", help="With --spot: only this region.")
    ] = None,
) -> None:
    """Prices per hour of the instance types you can launch now (or their history)."""
    current = state(ctx)
    client = current.client()
    if spot and history:
        rows = list(client.pages("/prices/history/", instance_type=instance_type, region=region))
        columns = [
            ("TYPE", "instance_type"),
            ("REGION", "region"),
            ("FROM", "valid_from"),
            ("UNTIL", "valid_until"),
            ("SPOT/H", "price"),
            ("WHY", "reason"),
        ]
    elif spot:
        rows = client.get("/prices/", instance_type=instance_type, region=region)
        columns = [
            ("TYPE", "instance_type"),
            ("REGION", "region"),
            ("ON-DEMAND/H", "on_demand_hourly"),
            ("SPOT/H", "spot_hourly"),
            ("24H LOW", "spot_low_24h"),
            ("24H HIGH", "spot_high_24h"),
            ("CURRENCY", "currency"),
        ]
    elif history:
        rows = list(client.pages("/price-history/", instance_type=instance_type))
        columns = [
            ("TYPE", "instance_type"),
            ("FROM", "valid_from"),
            ("ON-DEMAND", "on_demand_hourly"),
            ("PREEMPTIBLE", "preemptible_hourly"),
            ("STOPPED", "stopped_hourly"),
            ("CURRENCY", "currency"),
        ]
    else:
        rows = [
            r
            for r in client.get("/instance-types/")
            if not instance_type or r["code"] == instance_type
        ]
        columns = [
            ("TYPE", "code"),
            ("GPUS", "gpu_count"),
            ("GPU", "gpu_model.name"),
            ("REGIONS", "regions"),
            ("ON-DEMAND/H", "price.on_demand_hourly"),
            ("PREEMPTIBLE/H", "price.preemptible_hourly"),
            ("CURRENCY", "price.currency"),
        ]
    if current.json:
        output.as_json(rows)
    else:
        output.table(rows, columns, empty="No prices.")


@app.command()
def usage(
    ctx: typer.Context,
    month: Annotated[
        str | None, typer.Option("--month", "-m", help="YYYY-MM (default: this month).")
    ] = None,
) -> None:
    """Spend of a month, per instance type and per instance."""
    current = state(ctx)
    body = current.client().get("/usage/", month=month)
    if current.json:
        output.as_json(body)
        return
    forecast = f", forecast {body['forecast']}" if body.get("forecast") else ""
    output.note(
        f"{body['month']}: spent {body['spend']} {body['currency']}{forecast}; running now "
        f"costs {body['run_rate_hourly']} an hour."
    )
    output.table(
        body["lines"],
        [
            ("TYPE", "instance_type"),
            ("REGION", "region"),
            ("KIND", "kind"),
            ("SECONDS", "seconds"),
            ("PRICE/H", "unit_price"),
            ("AMOUNT", "amount"),
        ],
        empty="No usage that month.",
    )


def _invoice_id(client: Client, ref: str) -> int:
    if re.fullmatch(r"\d{1,18}", ref):
        return int(ref)
    for invoice in client.pages("/invoices/"):
        if invoice["number"] == ref:
            return invoice["id"]
    raise CliError(f"No invoice is numbered {ref!r}.", NOT_FOUND)


@invoices_app.command("list")
def invoices_list(ctx: typer.Context) -> None:
    """Invoices, newest first."""
    current = state(ctx)
    rows = list(current.client().pages("/invoices/"))
    if current.json:
        output.as_json(rows)
        return
    output.table(
        rows,
        [
            ("ID", "id"),
            ("NUMBER", "number"),
            ("MONTH", "month"),
            ("TOTAL", "total"),
            ("DUE", "balance_due"),
            ("CURRENCY", "currency"),
            ("STATUS", "status"),
        ],
        empty="No invoices yet.",
    )


@invoices_app.command("download")
def invoices_download(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Id or number.")],
    file_format: Annotated[FileFormat, typer.Option("--format")] = FileFormat.pdf,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Where to write it (default: its own name, here)."),
    ] = None,
) -> None:
    """Download an invoice as PDF (or its lines as CSV)."""
    current = state(ctx)
    client = current.client()
    pk = _invoice_id(client, invoice)
    extension = file_format.value
    response = client.request("GET", f"/invoices/{pk}/{extension}/", stream=True)
    match = re.search(r'filename="([^"/\\]+)"', response.headers.get("Content-Disposition", ""))
    target = file or Path(match.group(1) if match else f"invoice-{pk}.{extension}")
    try:
        with open(target, "wb") as handle:
            for chunk in response.iter_content(64 * 1024):
                handle.write(chunk)
    except OSError as exc:
        raise CliError(f"Cannot write {target}: {exc.strerror}.", FAILED) from None
    if current.json:
        output.as_json({"id": pk, "format": extension, "file": str(target)})
    else:
        output.note(f"Saved {target} ({target.stat().st_size} bytes).")


# --- clusters and volumes (issue 17; served when the server has them) ---------------------------


def _optional_area(client: Client, path: str, what: str) -> Any:
    try:
        return list(client.pages(path))
    except CliError as error:
        if error.exit_code == NOT_FOUND and "no such URL" in error.message:
            raise CliError(f"This Backfill server has no {what} API.", NOT_FOUND) from None
        raise


def _area_show(client: Client, path: str, what: str) -> Any:
    try:
        return client.get(path)
    except CliError as error:
        if error.exit_code == NOT_FOUND and "no such URL" in error.message:
            raise CliError(f"This Backfill server has no {what} API.", NOT_FOUND) from None
        raise


def _generic_table(current: State, rows: list[dict], empty: str) -> None:
    if current.json:
        output.as_json(rows)
        return
    keys = [
        k for k in ("id", "name", "state", "region", "size_gb", "nodes") if rows and k in rows[0]
    ]
    output.table(rows, [(k.upper(), k) for k in keys or ["id"]], empty=empty)


@clusters_app.command("list")
def clusters_list(ctx: typer.Context) -> None:
    """Clusters of the organization."""
    current = state(ctx)
    _generic_table(
        current, _optional_area(current.client(), "/clusters/", "clusters"), "No clusters."
    )


@clusters_app.command("show")
def clusters_show(ctx: typer.Context, cluster: Annotated[int, typer.Argument(help="Id.")]) -> None:
    """One cluster."""
    current = state(ctx)
    body = _area_show(current.client(), f"/clusters/{cluster}/", "clusters")
    if current.json:
        output.as_json(body)
    else:
        output.record(body, [(k, k) for k in body])


@volumes_app.command("list")
def volumes_list(ctx: typer.Context) -> None:
    """Volumes of the organization."""
    current = state(ctx)
    _generic_table(current, _optional_area(current.client(), "/volumes/", "volumes"), "No volumes.")


def _volume_ids(client: Client, refs: list[str], region: str) -> list[int]:
    """Ids of volumes given by id or by name (a name in the launch's region first)."""
    volumes = _optional_area(client, "/volumes/", "volumes")
    ids = []
    for ref in refs:
        if ref.isdigit():
            ids.append(int(ref))
            continue
        named = [v for v in volumes if v["name"] == ref]
        named.sort(key=lambda v: v["region"] != region)
        if not named:
            raise CliError(f"No volume is named {ref!r} (backfill volumes list).", USAGE)
        ids.append(named[0]["id"])
    return ids


@volumes_app.command("create")
def volumes_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name: machines see it at /data/<name>.")],
    region: Annotated[str, typer.Option("--region", "-r", help="Region, e.g. us-east-1.")],
    size: Annotated[int, typer.Option("--size", "-s", help="Size in GB (a whole number).")],
) -> None:
    """Create a volume (counts against the storage quota; billed per GB-month)."""
    current = state(ctx)
    body = current.client().post(
        "/volumes/", {"name": name, "region": region, "size_gb": size}, idempotent=True
    )
    if current.json:
        output.as_json(body)
    else:
        output.note(
            f"Created {body['name']} (#{body['id']}), {body['size_gb']} GB, {body['state']}."
        )


@volumes_app.command("show")
def volumes_show(ctx: typer.Context, volume: Annotated[int, typer.Argument(help="Id.")]) -> None:
    """One volume."""
    current = state(ctx)
    body = _area_show(current.client(), f"/volumes/{volume}/", "volumes")
    if current.json:
        output.as_json(body)
    else:
        output.record(body, [(k, k) for k in body])


# --- running it ---------------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"backfill: error: {message}\n")
    return code


def run(argv: list[str] | None = None) -> None:
    """The console script: never a traceback, one line on stderr and a meaningful exit code.

    Typer handles the command line (usage errors: exit 2 with the usage); what the commands
    raise is ours to say in one line."""
    if argv is not None:
        sys.argv = ["backfill", *argv]
    try:
        app()
    except CliError as error:
        sys.exit(_fail(error.message, error.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:  # noqa: BLE001 - a bug of ours: say so in one line
        if os.environ.get("BACKFILL_DEBUG"):
            traceback.print_exc()
        sys.exit(
            _fail(f"unexpected {type(error).__name__}: {error} (BACKFILL_DEBUG=1 for more)", FAILED)
        )


__all__ = ["NOT_SIGNED_IN", "app", "run"]
