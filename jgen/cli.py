"""The ``jgen`` command.

    jgen list                                   experiments you can run, with their variants
    jgen show EXPERIMENT [key=value ...]        the resolved config of an experiment
    jgen train EXPERIMENT [key=value ...]       train (resumes from a checkpoint in --workdir)
    jgen eval --workdir DIR                     evaluate the latest checkpoint on the test split
    jgen sample --workdir DIR [--num N]         draw samples from the latest checkpoint
    jgen sample --workdir DIR --input TEXT ...  decode your own inputs (seq2seq runs)
    jgen report [--check]                       rebuild docs/results.md from the run records

Only the standard library is imported until a command needs more, so that ``jgen --help`` and
``jgen list`` start at once.

Examples: ``jgen train realnvp_2d:moons train.steps=2000 --workdir runs/moons``;
``jgen train realnvp_digits --smoke``;
``jgen sample --workdir runs/seq2seq_tasks_dates --input "3 March 1999" --decode beam``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

__all__ = ["main"]


_EXAMPLES = """examples:
  jgen list
  jgen show realnvp_2d:moons train.steps=2000
  jgen train realnvp_2d:moons train.steps=2000 --workdir runs/moons   (again: resumes)
  jgen eval --workdir runs/moons
  jgen train realnvp_2d:moons --smoke            (a tiny run, in seconds)
`jgen COMMAND --help` describes each command's options."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jgen", description="Deep generative models in JAX.", epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the experiments, one line each, with their variants")

    show = sub.add_parser(
        "show", help="print the resolved config of an experiment, one key=value a line"
    )
    show.add_argument("experiment", help="name (see `jgen list`) or path to a config .py file")
    show.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    show.add_argument("--smoke", action="store_true", help="the tiny smoke variant of the config")

    t = sub.add_parser("train", help="train an experiment")
    t.add_argument("experiment", help="name (see `jgen list`) or path to a config .py file")
    t.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    t.add_argument("--workdir", help="run directory (default runs/<experiment>)")
    t.add_argument("--smoke", action="store_true", help="the tiny smoke variant of the config")
    t.add_argument(
        "--fresh", action="store_true", help="delete the workdir's checkpoints and start over"
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    d = t.add_argument_group(
        "multi-host (jax.distributed)",
        "start the same command on every host; settings default to the environment variables "
        "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, else to a detected cluster "
        "(SLURM, Open MPI, ...)",
    )
    d.add_argument(
        "--distributed", action="store_true",
        help="join a multi-process run (implied by the three options below)",
    )  # fmt: skip
    d.add_argument("--coordinator-address", metavar="HOST:PORT", help="process 0's address")
    d.add_argument("--num-processes", type=int, metavar="N")
    d.add_argument("--process-id", type=int, metavar="I")

    e = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    e.add_argument("--workdir", required=True)
    e.add_argument("--split", choices=("test", "train"), default="test")
    e.add_argument("--member", type=int, default=0, help="which seed of a vmapped-seeds run")

    s = sub.add_parser("sample", help="sample from the latest checkpoint of a run")
    s.add_argument("--workdir", required=True)
    s.add_argument("--num", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--member", type=int, default=0, help="which seed of a vmapped-seeds run")
    s.add_argument("--out", help="output .npy file (default WORKDIR/samples.npy)")
    s.add_argument(
        "--input", action="append", default=[], metavar="TEXT",
        help="a source text to decode (seq2seq runs; repeat for several); prints JSON lines",
    )  # fmt: skip
    s.add_argument("--decode", choices=("greedy", "beam", "sample"), default="greedy")
    s.add_argument("--beam-size", type=int, default=4)
    s.add_argument("--length-penalty", type=float, default=1.0)
    s.add_argument("--temperature", type=float, default=1.0)

    r = sub.add_parser("report", help="rebuild docs/results.md from the run records")
    r.add_argument(
        "--check", action="store_true",
        help="do not write: exit with status 1 if docs/results.md differs from the records",
    )  # fmt: skip
    return p


def _build(config):
    """`build_experiment`, with bad settings and malformed data files (the ``ValueError`` and
    ``TypeError`` of the data loaders, models, optimiser and TrainConfig, which name the file or
    setting) reported as a `ConfigError`, i.e. a clean CLI error rather than a traceback."""
    from jgen.config import ConfigError
    from jgen.experiment import build_experiment

    try:
        return build_experiment(config)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from e


def _restore(workdir: Path, member: int = 0):
    """`jgen.experiment.restore_run` with bad settings reported as a `ConfigError`."""
    from jgen.config import ConfigError
    from jgen.experiment import restore_run

    try:
        return restore_run(workdir, member=member)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from e


def _cmd_list() -> int:
    from jgen.config import describe_experiments

    described = describe_experiments()
    width = max(map(len, described))
    for name, (summary, variants) in described.items():
        print(f"{name:<{width}}  {summary}")
        if variants:
            print(f"{'':<{width}}    {name}:{{{','.join(variants)}}}")
    return 0


def _cmd_show(args) -> int:
    from jgen.config import load_experiment_config

    config = load_experiment_config(args.experiment, args.overrides, smoke=args.smoke)
    for key, value in _flatten(config.to_dict()):
        print(f"{key}={value!r}")
    return 0


def _flatten(tree: dict, prefix: str = ""):
    """``(dotted.key, value)`` of every leaf: the form overrides take."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _cmd_report(args) -> int:
    from jgen.config import ConfigError
    from jgen.records import REPO_ROOT, RESULTS_PAGE, load_records, render_results, write_results

    page = REPO_ROOT / RESULTS_PAGE
    if not page.parent.is_dir():
        raise ConfigError(f"jgen report runs in a checkout of jgen's repository; {page.parent} "
                          "is not there (an installed copy has no records)")  # fmt: skip
    if not args.check:
        print(f"wrote {write_results()}")
        return 0
    current = page.read_text() if page.exists() else ""
    if current != render_results(load_records()):
        print(f"{page} is out of date: run `jgen report`", file=sys.stderr)
        return 1
    print(f"{page} is up to date")
    return 0


def _join_distributed(args) -> None:
    """``jax.distributed.initialize`` when asked to, before anything else touches JAX."""
    from jgen.config import ConfigError
    from jgen.parallel import initialize

    explicit = (args.coordinator_address, args.num_processes, args.process_id)
    if not args.distributed and all(v is None for v in explicit):
        return
    try:
        initialize(*explicit)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"cannot join the multi-process run: {e}") from e


def _check_workdir(workdir: Path) -> None:
    """The run directory must be a directory, or a path that can be created in a writable
    directory: checked before anything is built on disk or trained."""
    from jgen.config import ConfigError

    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir: expected a directory, got {workdir}, an existing file")
    ancestor = workdir
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"--workdir: expected a path below a directory, got {workdir}: {ancestor} is a file"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--workdir: expected a writable directory, got {workdir}: {ancestor} is read-only"
        )


def _cmd_train(args) -> int:
    _join_distributed(args)
    from jgen.config import ConfigError, load_experiment_config
    from jgen.experiment import config_to_dict, resume_check
    from jgen.parallel import is_primary
    from jgen.train import fit
    from jgen.train.loop import training_mesh

    config = load_experiment_config(args.experiment, args.overrides, smoke=args.smoke)
    if args.no_progress:
        config.train.progress = False
    exp = _build(config)
    try:  # device-count settings, checked before anything is written
        training_mesh(exp.train)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    safe = args.experiment.replace(":", "_").replace("/", "_").removesuffix(".py")
    workdir = Path(args.workdir or Path("runs") / (safe + ("_smoke" if args.smoke else "")))
    _check_workdir(workdir)
    result = fit(
        exp.objective, exp.dataset, exp.tx, exp.train, workdir=workdir,
        run_config=config_to_dict(config), resume=not args.fresh,
        resume_policy=resume_check,
        on_end=(lambda state, wd: exp.figures(state, wd)) if exp.figures else None,
    )  # fmt: skip
    summary = {"workdir": str(workdir), "step": int(result.state.step), **result.eval_metrics}
    summary.update(_figure_metrics(workdir))
    if result.member_eval_metrics is not None:
        summary["members"] = result.member_eval_metrics
    if result.stopped_early:
        summary["stopped_early"] = result.stopped_early
    if is_primary():
        _write_run_record(workdir, config, summary, shlex.join(["jgen", *args.argv]))
        print(json.dumps(summary))
        print(_outputs_line(workdir), file=sys.stderr)
    return 1 if result.stopped_early else 0


# Metrics a family's figures hook writes at the end of a run (from its own samples or grid).
_FIGURE_METRIC_FILES = ("density.json", "gan_metrics.json")


def _figure_metrics(workdir: Path) -> dict:
    metrics = {}
    for name in _FIGURE_METRIC_FILES:
        if (workdir / name).is_file():
            metrics.update(json.loads((workdir / name).read_text()))
    return metrics


def _write_run_record(workdir: Path, config, summary: dict, command: str) -> None:
    """``workdir/record.json`` (`jgen.records`): the command, config, environment and results."""
    from jgen.records import make_record, write_record

    metrics = {k: v for k, v in summary.items() if k not in ("workdir", "members")}
    record = make_record(
        command=command, config=json.loads(config.to_json()), metrics=metrics,
        experiment=config.get("name", "experiment"),
    )  # fmt: skip
    if "members" in summary:
        record["members"] = summary["members"]
    write_record(workdir / "record.json", record)


def _outputs_line(workdir: Path) -> str:
    """The last line of `jgen train`: where its figures and files are."""
    figures = sorted(p.name for p in workdir.glob("*.png"))
    files = ", ".join([*figures, "metrics.jsonl", "record.json", "checkpoints/"])
    return f"figures and results in {workdir}/: {files}"


def _cmd_eval(args) -> int:
    from jgen.train import evaluate_dataset, make_eval_step, run_keys

    workdir = Path(args.workdir)
    exp, state = _restore(workdir, args.member)
    # The run's own eval key: `jgen eval` reproduces the numbers the training run logged.
    metrics = evaluate_dataset(
        make_eval_step(exp.objective.evaluate), state, exp.dataset.arrays(args.split),
        batch_size=exp.train.eval_batch_size, key=run_keys(exp.train.members[args.member][0])[2],
    )  # fmt: skip
    record = {"step": int(state.step), "split": args.split, **metrics}
    if len(exp.train.members) > 1:
        record["member"] = args.member
    print(json.dumps(record))
    return 0


def _cmd_sample(args) -> int:
    import jax
    import numpy as np

    from jgen.config import ConfigError

    if args.num <= 0:
        raise ConfigError(f"--num must be positive, got {args.num}")
    workdir = Path(args.workdir)
    exp, state = _restore(workdir, args.member)
    if args.input:
        return _decode_inputs(args, exp, state)
    if exp.sample is None:
        raise ConfigError(f"experiment {exp.name!r} does not support sampling")
    samples = exp.sample(state, jax.random.PRNGKey(args.seed), args.num)
    out = Path(args.out or workdir / "samples.npy")
    np.save(out, samples)
    print(json.dumps({"samples": str(out), "shape": list(samples.shape)}))
    return 0


def _decode_inputs(args, exp, state) -> int:
    """``jgen sample --input TEXT``: decode user-given sources with a seq2seq run's model."""
    import jax

    from jgen.seq2seq import decode_inputs

    results = decode_inputs(
        exp.objective, exp.dataset.vocabulary, state.eval_params, args.input, method=args.decode,
        beam_size=args.beam_size, length_penalty=args.length_penalty,
        temperature=args.temperature, key=jax.random.PRNGKey(args.seed),
    )  # fmt: skip
    for result in results:
        print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    # parse_known_args lets overrides follow options too (`train X --smoke key=value`).
    args, extra = parser.parse_known_args(argv)
    takes_overrides = args.command in ("train", "show")
    unknown = [e for e in extra if e.startswith("-") or not takes_overrides]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *extra]
    args.argv = argv
    commands = {
        "list": lambda: _cmd_list(),
        "show": lambda: _cmd_show(args),
        "train": lambda: _cmd_train(args),
        "eval": lambda: _cmd_eval(args),
        "sample": lambda: _cmd_sample(args),
        "report": lambda: _cmd_report(args),
    }
    from jgen.config import ConfigError

    try:
        return commands[args.command]()
    except BrokenPipeError:  # `jgen list | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ConfigError, FileNotFoundError) as e:
        return _error(args.command, e)
    except ValueError as e:
        # Imported only now: they load JAX, which `jgen --help` and `jgen list` do without.
        from jgen.train import ResumeError
        from jgen.validation import ValidationError

        if not isinstance(e, ResumeError | ValidationError):
            raise
        return _error(args.command, e)


def _error(command: str, error: Exception) -> int:
    print(f"jgen {command}: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
