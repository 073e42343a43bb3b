"""Checkpoints of the train state through orbax, plus the run's config beside them.

orbax writes each step into a temporary directory and renames it when complete, so a crash in
the middle of a save leaves the previous checkpoint intact and usable. The config is written the
same way (temporary file, then an atomic rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jgen.train.step import TrainState

__all__ = ["Checkpointer", "atomic_write_text", "load_config", "save_config"]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a run's files are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _state_dict(state: TrainState) -> dict[str, Any]:
    saved = dict(
        step=state.step,
        params=state.params,
        opt_state=state.opt_state,
        model_state=state.model_state,
        rng=state.rng,
        nonfinite_streak=state.nonfinite_streak,
        longest_nonfinite_streak=state.longest_nonfinite_streak,
    )
    if state.ema_params is not None:
        saved["ema_params"] = state.ema_params
    return saved


class Checkpointer:
    """Saves and restores `TrainState` under ``workdir/checkpoints`` (keeps ``max_to_keep``)."""

    def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int = 3):
        self.directory = Path(workdir).absolute() / "checkpoints"
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            # Named so that `item_metadata` can read a checkpoint's tree before restoring it.
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    @staticmethod
    def has_checkpoint(workdir: str | os.PathLike) -> bool:
        directory = Path(workdir) / "checkpoints"
        return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())

    def clear(self) -> None:
        """Delete every checkpoint (a fresh start in the same workdir)."""
        for step in list(self._manager.all_steps()):
            self._manager.delete(step)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState, *, force: bool = True) -> None:
        step = int(jax.device_get(state.step))
        if self._manager.latest_step() == step:
            return
        self._manager.save(step, args=ocp.args.StandardSave(_state_dict(state)), force=force)

    def restore(self, template: TrainState, step: int | None = None) -> TrainState:
        """Restore into the structure (and shardings) of ``template``.

        A checkpoint with a moving average of the parameters restores it even when ``template``
        has none (its structure is that of the params), so `jgen eval`/`sample` see it; a
        template with one cannot restore a checkpoint without one (ValueError).
        """
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint found under {self.directory}")
        saved_ema = "ema_params" in self._manager.item_metadata(step)
        if saved_ema and template.ema_params is None:
            template = template.replace(ema_params=template.params)
        elif template.ema_params is not None and not saved_ema:
            raise ValueError(
                f"the checkpoint of step {step} under {self.directory} has no moving average of "
                "the parameters, but this run keeps one (train.ema_decay > 0)"
            )
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state_dict(template))
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        return template.replace(**restored)

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def save_config(workdir: str | os.PathLike, config: dict[str, Any]) -> None:
    atomic_write_text(Path(workdir) / "config.json", json.dumps(config, indent=2, sort_keys=True))


def load_config(workdir: str | os.PathLike) -> dict[str, Any]:
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir} a jgen run directory?")
    return json.loads(path.read_text())
