"""Run records: the JSON file behind every published number, and the results page built from them.

A run record is one JSON object with the keys

    command       the command line that produced it (``jgen train ...``, ``python benchmarks/...``)
    config        the resolved configuration (a dict)
    commit        the git commit of the code, or None outside a git checkout
    date          UTC, ISO 8601
    hardware      platform, processor, cpu_count and the JAX devices
    load_average  the 1/5/15-minute load averages when the record was written (None if unknown)
    versions      python and the numerical stack (jax, jaxlib, flax, optax, ...)
    metrics       a dict of named values (one row of a results table), or ``rows``: a list of
                  such dicts (a benchmark's table)

and, for grouping on the results page, ``experiment`` (a training run: ``realnvp_2d:moons``) or
``benchmark`` (``flows``), with an optional ``group`` / ``title`` / ``columns``. A record that
was copied from an earlier document instead of being regenerated says so in ``source``.

`jgen train` writes ``record.json`` into its workdir; published records live in
``docs/records/`` (training) and ``benchmarks/results/`` (benchmarks), and `render_results`
(``jgen report``) turns them into ``docs/results.md``. This module imports JAX only to list
the devices, when a record is made.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_DIRS",
    "environment",
    "load_records",
    "make_record",
    "render_results",
    "write_record",
    "write_results",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where published records live, relative to the repository root.
RECORD_DIRS = ("docs/records", "benchmarks/results")
RESULTS_PAGE = "docs/results.md"
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "diffrax", "distrax", "numpy", "jgen")


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit(root: Path) -> str | None:
    """HEAD of the checkout jgen runs from (None for an installed copy), with ``+dirty`` when
    tracked files differ from it."""
    if not (root / ".git").exists():
        return None
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    diff = _git(root, "diff", "--quiet", "HEAD")
    dirty = diff is not None and diff.returncode == 1
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _versions(packages: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _devices() -> list[str]:
    """``"<count> x <kind>"`` per kind of JAX device (imports JAX)."""
    import jax

    counts: dict[str, int] = {}
    for device in jax.devices():
        kind = f"{device.platform}:{getattr(device, 'device_kind', device.platform)}"
        counts[kind] = counts.get(kind, 0) + 1
    return [f"{n} x {kind}" for kind, n in counts.items()]


def _cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere `platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment(*, extra_packages: Sequence[str] = (), devices: bool = True) -> dict[str, Any]:
    """Commit, date, hardware, load average and versions of the running process."""
    hardware = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    if devices:
        hardware["devices"] = _devices()
    return {
        "commit": _git_commit(REPO_ROOT),
        "date": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "hardware": hardware,
        "load_average": _load_average(),
        "versions": _versions((*VERSIONED_PACKAGES, *extra_packages)),
    }


def make_record(
    *,
    command: str | Sequence[str],
    config: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    experiment: str | None = None,
    benchmark: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A run record of this process (`environment`) with the given command, config and results.

    Exactly one of ``experiment`` (training runs) and ``benchmark`` names what was run;
    ``metrics`` (one row) or ``rows`` (several) hold the results; ``fields`` are added as they
    are (``group``, ``title``, ``columns``, ``notes``, ...).
    """
    if (experiment is None) == (benchmark is None):
        raise ValueError("make_record needs exactly one of experiment= and benchmark=")
    if (metrics is None) == (rows is None):
        raise ValueError("make_record needs exactly one of metrics= and rows=")
    if not isinstance(command, str):
        command = " ".join(command)
    record: dict[str, Any] = {"experiment": experiment} if experiment else {"benchmark": benchmark}
    record.update(command=command, config=dict(config or {}), **environment())
    if metrics is not None:
        record["metrics"] = dict(metrics)
    else:
        record["rows"] = [dict(r) for r in rows]
    record.update(fields)
    return json.loads(json.dumps(record, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / jax scalars and arrays
        return value.tolist()
    raise TypeError(f"a run record holds JSON values only, got {type(value).__name__}")


def write_record(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``record`` as indented JSON (readable by everyone: 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    path.chmod(0o644)
    return path


def load_records(directories: Iterable[str | os.PathLike] | None = None) -> list[dict[str, Any]]:
    """Every ``*.json`` record under ``directories`` (default: `RECORD_DIRS` of the repository),
    in path order, each with its ``path`` relative to the repository when it is inside it."""
    dirs = [REPO_ROOT / d for d in RECORD_DIRS] if directories is None else map(Path, directories)
    records = []
    for directory in dirs:
        for path in sorted(Path(directory).rglob("*.json")):
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or not {"command", "config"} <= set(record):
                continue  # another JSON file (a benchmark's raw output), not a run record
            if not {"experiment", "benchmark"} & set(record):  # benchmarks/harness.py's records
                record["benchmark"] = path.stem
            table = path.with_suffix(".md")  # the table a benchmark wrote beside its record
            if table.is_file() and not any(_scalar_rows(record)):
                record["table"] = table.read_text().strip()
            try:
                record["path"] = str(path.resolve().relative_to(REPO_ROOT))
            except ValueError:
                record["path"] = str(path)
            records.append(record)
    return records


# The results page -----------------------------------------------------------------------------


def _group(record: Mapping[str, Any]) -> str:
    if "group" in record:
        return str(record["group"])
    if "experiment" in record:
        return "experiment " + str(record["experiment"]).partition(":")[0]
    return "benchmark " + str(record["benchmark"])


def _hardware_line(record: Mapping[str, Any]) -> str:
    hw = record.get("hardware") or {}
    if isinstance(hw, str):
        return hw
    cpu = hw.get("description") or hw.get("processor") or hw.get("cpu") or hw.get("machine")
    parts = [cpu or "unknown CPU"]
    if hw.get("cpu_count"):
        parts.append(f"{hw['cpu_count']} CPU cores")
    parts += hw.get("devices") or []
    if hw.get("device") and hw.get("num_devices"):  # benchmarks/harness.py's form
        parts.append(f"{hw['num_devices']} x {hw.get('backend', '')}:{hw['device']}")
    return ", ".join(str(p) for p in parts)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        short = repr(value)  # as written when short (2.04, 1e-05), else 4 significant digits
        return short if len(short.lstrip("-")) <= 7 else f"{value:#.4g}".rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|")


def _rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A record's table: its ``rows``, its metrics' ``rows`` (a benchmark's), or one row of
    its metrics."""
    label = record.get("label") or record.get("experiment") or record.get("benchmark")
    metrics = record.get("metrics") or {}
    rows = record.get("rows") or (metrics.get("rows") if isinstance(metrics, dict) else None)
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return [dict(r) for r in rows]
    if isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values()):
        return [{"run": name, **values} for name, values in metrics.items()]  # named runs
    return [{"run": label, **metrics}] if isinstance(metrics, dict) else [{"run": label}]


def _nested(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    )


def _scalar_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a record's table without nested values; none when only the label is left."""
    rows = [{k: v for k, v in row.items() if not _nested(v)} for row in _rows(record)]
    return [row for row in rows if set(row) - {"run"}]


def _text(value: Any) -> str:
    """A command or date that a record may hold as a list (one per process it ran)."""
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)


def _columns(records: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    for record in records:
        if record.get("columns"):
            return list(record["columns"])
    columns: list[str] = []
    for row in rows:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, dict)]
    return columns


def _one_minute_load(load: Any) -> float:
    """The 1-minute load of a record: [1, 5, 15] averages, or benchmarks/harness.py's summary
    (the highest 1-minute load seen during the run)."""
    if isinstance(load, Mapping):
        return float(load.get("max_load1_during", load.get("after", [0.0])[0]))
    return float(load[0])


def _load_line(records: Sequence[Mapping[str, Any]]) -> str:
    loads = [r["load_average"] for r in records if r.get("load_average")]
    if not loads:
        return "load average not recorded"
    ones = sorted(_one_minute_load(load) for load in loads)
    span = f"{ones[0]:.2f}" if ones[0] == ones[-1] else f"{ones[0]:.2f}-{ones[-1]:.2f}"
    return f"1-minute load average: {span}"


def _table(records: Sequence[Mapping[str, Any]]) -> list[str]:
    tables = [r["table"] for r in records if r.get("table")]
    if tables:  # a benchmark's own table, written with its record
        return [t for table in tables for t in (table, "")][:-1]
    rows = [row for record in records for row in _scalar_rows(record)]
    columns = _columns(records, rows)
    if not columns:
        return []
    numeric = [
        all(isinstance(row.get(c), int | float | None) for row in rows) and i > 0
        for i, c in enumerate(columns)
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def render_results(records: Sequence[Mapping[str, Any]]) -> str:
    """The results page: per group of records (an experiment module, a benchmark, or a record's
    ``group``) and hardware, one table, with the hardware and the load stated once above it and
    every record's command and file below it."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((_group(record), _hardware_line(record)), []).append(record)
    out = [
        "# Results",
        "",
        "Generated by `jgen report` from the run records in "
        + " and ".join(f"`{d}/`" for d in RECORD_DIRS)
        + "; do not edit by hand. Each record holds the command, the resolved configuration, "
        "the commit, the date, the hardware, the load and the library versions of its run.",
    ]
    # Training results first, then benchmarks; alphabetical within each.
    order = sorted(groups, key=lambda g: ("benchmark" in groups[g][0], g))
    for group, hardware in order:
        members = groups[(group, hardware)]
        title = next((r["title"] for r in members if r.get("title")), group)
        out += ["", f"## {title}", "", f"Hardware: {hardware}; {_load_line(members)}."]
        sources = sorted({r["source"] for r in members if r.get("source")})
        for source in sources:
            out += ["", f"**Not regenerated:** {source}."]
        out += ["", *_table(members), ""]
        for record in members:
            date = _text(record.get("date") or "undated")[:10]
            verdict = ""
            if record.get("publishable") is False:
                reasons = (record.get("load_average") or {}).get("not_publishable_because", [])
                verdict = "; **not publishable**: " + "; ".join(reasons)
            command = _text(record["command"])
            out.append(f"- `{command}` ({date}; [record]({_link(record)}){verdict})")
        notes = [r["notes"] for r in members if r.get("notes")]
        if notes:
            out += ["", *notes]
    return "\n".join(out) + "\n"


def _link(record: Mapping[str, Any]) -> str:
    path = record.get("path", "")
    return os.path.relpath(REPO_ROOT / path, (REPO_ROOT / RESULTS_PAGE).parent)


def write_results(path: str | os.PathLike | None = None) -> Path:
    """Rebuild the results page (default ``docs/results.md``) from the published records."""
    path = Path(path) if path is not None else REPO_ROOT / RESULTS_PAGE
    path.write_text(render_results(load_records()))
    return path
