"""The simulator's state on disk: a snapshot and a journal of the changes made since.

The snapshot (`state.json`) is the whole state as JSON, replaced atomically so a crash never
leaves half a file. A change is not written as a new snapshot (that costs O(machines): ~15 ms of
CPU at 500 machines) but appended to the journal (`state.json.journal`): one line per change,
`{"seq": n, ...}` with the records it touched, whole, fsynced before the change is answered.
Loading reads the snapshot and replays the journal's lines after the snapshot's `journal_seq`
(a line at or before it was already in the snapshot: a crash between writing a snapshot and
emptying the journal leaves such lines). Only the last line can be torn (each is fsynced
before the next is written); it was never answered, so it is dropped. A line that does not
parse before the last is corruption and stops the load. Compaction writes a new snapshot,
then empties the journal.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: Compact once the journal is larger than the snapshot and at least this big (bytes): the
#: snapshots written then cost at most about as much as the journal lines written in between.
COMPACT_MIN_BYTES = 1 << 20


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def encode_state(data: dict[str, Any]) -> str:
    """The file's text: one line, by json's C encoder (an indent makes json fall back to its
    Python encoder, ~20x slower)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def journal_line(seq: int, changed: dict[str, list[Any]]) -> str:
    """One change: the records it touched (`machines`, `volumes`, `reservations`: whole, as
    they are now, replaying sets them) and the ids of reservations `released`."""
    entry: dict[str, Any] = {"seq": seq, **{key: items for key, items in changed.items() if items}}
    return json.dumps(entry, separators=(",", ":")) + "\n"


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot alone, or None when there is none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a simulator state")
    return data


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's whole lines ([] without a journal); a torn last line is left out."""
    try:
        raw = journal_path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    # The text after the last newline is a line cut short by a crash (or nothing).
    entries = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
            raise ValueError(f"{journal_path(path)}: line {number} is corrupt")
        entries.append(entry)
    return entries


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, the journal replayed onto the snapshot, or None when there is neither.

    `journal_seq` is the last change in it (the next line written is numbered after it)."""
    data = read_snapshot(path)
    entries = read_journal(path)
    if data is None:
        if not entries:
            return None
        raise ValueError(f"{journal_path(path)} has changes but {path} is missing")
    return replay(data, entries)


def replay(data: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`data` (a snapshot) with the journal entries after its `journal_seq` applied."""
    seq = int(data.get("journal_seq", 0))
    fresh = [entry for entry in entries if entry["seq"] > seq]
    if not fresh:
        return data
    machines = {m["id"]: m for m in data.get("machines", [])}
    volumes = {v["id"]: v for v in data.get("volumes", [])}
    reservations = {r["id"]: r for r in data.get("reservations", [])}
    for entry in fresh:
        if entry["seq"] != seq + 1:
            raise ValueError(f"the simulator journal skips from change {seq} to {entry['seq']}")
        seq = entry["seq"]
        machines.update((m["id"], m) for m in entry.get("machines", ()))
        volumes.update((v["id"], v) for v in entry.get("volumes", ()))
        reservations.update((r["id"], r) for r in entry.get("reservations", ()))
        for gone in entry.get("released", ()):
            reservations.pop(gone, None)
    return {
        **data,
        "machines": list(machines.values()),
        "volumes": list(volumes.values()),
        "reservations": list(reservations.values()),
        "journal_seq": seq,
    }


def save_state(path: Path, data: dict[str, Any] | str) -> None:
    """Write the snapshot (a dict, or its text from `encode_state`), fsynced, atomically, then
    empty the journal: the snapshot holds every change it had."""
    text = data if isinstance(data, str) else encode_state(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    journal = journal_path(path)
    if journal.exists():
        with journal.open("r+b") as handle:
            handle.truncate(0)
            os.fsync(handle.fileno())


def append_journal(path: Path, lines: list[str]) -> int:
    """Append the lines to the journal, fsynced before returning; the bytes written."""
    data = "".join(lines).encode()
    journal = journal_path(path)
    created = not journal.exists()
    with journal.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fdatasync(handle.fileno())
    if created:
        _fsync_dir(path.parent)
    return len(data)


def _fsync_dir(directory: Path) -> None:
    """A rename or a new file is durable once its directory is."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
