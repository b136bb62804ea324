"""Figures of one run, printed as they come and written as a table into bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Written by `make bench` (bench/run.py), newest run first. Each figure comes with its ratio\n"
    "to a baseline measured in the same run on the same machine; compare ratios across runs.\n"
)


@dataclass
class Row:
    section: str
    name: str
    figure: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        ratio = f"  ratio {row.ratio:.2f}" if row.ratio is not None else ""
        verdict = {True: "  [met]", False: "  [MISSED]", None: ""}[row.met]
        baseline = f"  (baseline {row.baseline})" if row.baseline else ""
        target = f"  target {row.target}" if row.target else ""
        print(f"  {row.name}: {row.figure}{baseline}{ratio}{target}{verdict}", flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def machine() -> str:
    cores = os.cpu_count() or 0
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        memory = "unknown"
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores{f' ({model})' if model else ''}, {memory} memory, {platform.system()}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed arguments
            ["git", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,  # noqa: S607
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{sha}{' + uncommitted changes in the working tree' if dirty else ''}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(results: Results, *, started: datetime, seconds: float) -> str:
    lines = [
        f"## {started.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {machine()}",
        f"- commit: {commit()}",
        f"- duration: {seconds:.0f} s",
        "",
        "| section | measure | figure | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results.rows:
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (row.section, row.name, row.figure, row.baseline, ratio, row.target, met)
            )
            + " |"
        )
    if results.notes:
        lines += ["", *[f"- {_cell(n)}" for n in results.notes]]
    return "\n".join(lines) + "\n"


def write(results: Results, *, started: datetime, seconds: float) -> Path:
    """Prepend this run to bench/RESULTS.md, keeping the earlier runs below."""
    earlier = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        earlier = text[len(HEADER) :] if text.startswith(HEADER) else text
    run = markdown(results, started=started, seconds=seconds)
    content = HEADER + "\n" + run
    if earlier.strip():
        content += "\n" + earlier.lstrip("\n")
    RESULTS.write_text(content)
    return RESULTS
