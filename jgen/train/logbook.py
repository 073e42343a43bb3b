"""What a run reports as it goes: the window means of the train metrics, records appended to
``workdir/metrics.jsonl`` (only the primary process writes), the run's history and the console
lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jgen.train.checkpoint import atomic_write_text

__all__ = ["Logbook", "format_metrics", "mean_metrics"]


def mean_metrics(
    window: list[dict[str, jax.Array]], players: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Window means; a multi-player ``<player>/...`` metric is averaged over that player's
    steps only (and left out when the player did not step in the window)."""
    host = jax.device_get(window)
    if players is None:
        return {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    means = {}
    for k in host[0]:
        if k == "player":
            continue
        owner = k.partition("/")[0]
        # `player` is a scalar, or one equal value per member under vmapped seeds.
        values = [
            m[k]
            for m in host
            if owner not in players or players[int(np.ravel(m["player"])[0])] == owner
        ]
        if values:
            means[k] = float(np.mean(values))
    return means


class Logbook:
    """The run's records: `record` appends one to the history and to ``metrics.jsonl``;
    `say` and `warn` print on the primary process only."""

    def __init__(self, workdir: Path | None, *, primary: bool = True):
        self.primary = primary
        self.history: list[dict[str, Any]] = []
        self.path = None if workdir is None or not primary else workdir / "metrics.jsonl"

    def begin(self, start_step: int) -> None:
        """Drop the file's records past ``start_step``, where the run (re)starts: all of them
        for a fresh run, those a crashed run logged after its last checkpoint."""
        if self.path is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= start_step and start_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def say(self, message: str) -> None:
        if self.primary:
            tqdm.write(message)

    def warn(self, message: str) -> None:
        if self.primary:
            tqdm.write(message, file=sys.stderr)


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
