"""Resuming a run from its workdir: the saved config is compared with the new one by a resume
policy, the latest checkpoint is restored (on any number of devices), and the user is told
where the run resumes.

The trainer knows no config sections: whether two configs may share a checkpoint is the
experiment layer's decision (`jgen.experiment.resume_check`), passed to `fit` as
``resume_policy(previous, current)``. It returns a `ResumeCheck` (the settings that forbid
resuming, and warnings for changes a resumed run follows differently), or just the sequence of
forbidding settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jgen.parallel.distributed import barrier
from jgen.train.checkpoint import Checkpointer, load_config, save_config
from jgen.train.logbook import Logbook
from jgen.train.step import TrainState

__all__ = ["ResumeCheck", "ResumeError", "ResumePolicy", "prepare_workdir", "restore_latest"]


class ResumeError(ValueError):
    """A workdir's checkpoint cannot be resumed under the config asked for."""


@dataclasses.dataclass(frozen=True)
class ResumeCheck:
    """A resume policy's verdict: ``changed`` names the settings whose change forbids resuming
    (empty: resumable); ``warnings`` are printed when the run resumes."""

    changed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


#: ``resume_policy(previous, current) -> ResumeCheck`` or the names of differing settings (empty:
#: resumable), e.g. `jgen.experiment.resume_check`; the trainer knows no config sections.
ResumePolicy = Callable[[dict[str, Any], dict[str, Any]], "ResumeCheck | Sequence[str]"]


def prepare_workdir(
    workdir: Path,
    run_config: dict[str, Any] | None,
    *,
    resume: bool,
    policy: ResumePolicy | None,
    primary: bool = True,
) -> ResumeCheck:
    """Create ``workdir``; when resuming, check its checkpoint's saved config against
    ``run_config`` with ``policy`` (a `ResumeError` names what forbids it); then save
    ``run_config`` as the workdir's config.json (primary process only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    check = ResumeCheck()
    if run_config is None:
        return check
    if resume and Checkpointer.has_checkpoint(workdir) and (workdir / "config.json").exists():
        check = _verdict(policy, load_config(workdir), run_config)
        if check.changed:
            raise ResumeError(
                f"{workdir} holds a checkpoint of a run with a different config ("
                f"{', '.join(check.changed)} differ from {workdir / 'config.json'}); resume it "
                "with the same config, or start over in another workdir (CLI: --workdir or "
                "--fresh)"
            )
    barrier("jgen-fit-config-checked")  # every process has read the old config
    if primary:
        save_config(workdir, run_config)
    return check


def _verdict(policy: ResumePolicy | None, previous, current) -> ResumeCheck:
    if policy is None:
        return ResumeCheck()
    verdict = policy(previous, current)
    if isinstance(verdict, ResumeCheck):
        return verdict
    return ResumeCheck(changed=tuple(verdict))


def restore_latest(
    checkpointer: Checkpointer | None,
    state: TrainState,
    *,
    workdir: Path | None,
    resume: bool,
    steps: int,
    check: ResumeCheck,
    log: Logbook | None = None,
) -> TrainState:
    """The state to start from: ``state`` (the run's step 0), or the latest checkpoint
    restored into its shardings when resuming. Without ``resume`` the checkpoints are
    cleared. A resumed run says from which step, ``check``'s warnings, and whether anything is
    left to train (on ``log``)."""
    if checkpointer is None:
        return state
    if not resume:
        checkpointer.clear()
        return state
    if checkpointer.latest_step() is None:
        return state
    state = checkpointer.restore(state)
    if log is not None:
        start = int(jax.device_get(state.step))
        log.warn(f"resuming from step {start} of {steps} ({workdir})")
        for warning in check.warnings:
            log.warn(warning)
        if start >= steps:
            log.warn(f"nothing to train: the checkpoint is at step {start} >= {steps}")
    return state
