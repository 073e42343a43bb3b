"""One trainer for every model family: train state, jitted steps, the loop, checkpoints, and
vmapped seeds (stacked states)."""

from jgen.train.checkpoint import Checkpointer, load_config, save_config
from jgen.train.loop import (
    FitResult,
    TrainConfig,
    evaluate_dataset,
    fit,
    initial_run_state,
    initial_state,
    run_keys,
)
from jgen.train.members import member_state, stack_states
from jgen.train.resume import ResumeCheck, ResumeError
from jgen.train.step import (
    Objective,
    TrainEvalObjective,
    TrainState,
    make_eval_step,
    make_optimizer,
    make_train_step,
    player_schedule,
    stateless,
)

__all__ = [
    "Checkpointer",
    "FitResult",
    "Objective",
    "ResumeCheck",
    "ResumeError",
    "TrainConfig",
    "TrainEvalObjective",
    "TrainState",
    "evaluate_dataset",
    "fit",
    "initial_run_state",
    "initial_state",
    "load_config",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "member_state",
    "player_schedule",
    "run_keys",
    "save_config",
    "stack_states",
    "stateless",
]
