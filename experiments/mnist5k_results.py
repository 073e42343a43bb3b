"""One row of the MNIST-5k results table (docs/images.md): train, then evaluate, sample,
measure and record.

    nice -n 10 python -m experiments.mnist5k_results realnvp_mnist5k --minutes 25 \
        train.steps=1500 optim.warmup_steps=100

trains the config (with the given overrides) for its ``train.steps`` (a shorter run with a
complete learning-rate schedule when ``train.steps`` is overridden), or until ``--minutes``
have passed, whichever comes first (stopping as `jgen train` does on SIGTERM: the step in
flight finishes, a checkpoint is written). Then it evaluates the 1000-image test split (the
family's test metrics: bits/dim, or the VAE's IWAE bound; ``--test-stride 5`` evaluates every
fifth image, 20 per class, where the evaluation is too slow), draws ``--num-samples`` samples,
measures them with the MNIST-5k classifier of `jgen.image_metrics` (Fréchet distance to the
test split, classes covered) and writes the run record (`jgen.records`) to
``docs/records/mnist5k/<name>.json`` with the steps done, the minutes and the load averages
before and after; the family's sample grid goes to ``docs/figures/mnist5k_<name>.png``.
Short-training results, not converged ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np

from jgen.config import load_experiment_config
from jgen.experiment import build_experiment, config_to_dict
from jgen.image_metrics import image_sample_metrics
from jgen.records import REPO_ROOT, make_record, write_record
from jgen.train import evaluate_dataset, fit, make_eval_step, run_keys


def _test_metrics(run: dict, family: str, num_dims: int) -> dict[str, float]:
    """The test split's bits/dim (and, for the VAE, its IWAE bound in nats: on binarised
    pixels, bits/dim = nll / (D ln 2))."""
    if family == "vae":
        nll = run["nll"]
        return {"test NLL (nats)": nll, "test bits/dim": nll / (num_dims * math.log(2))}
    return {"test bits/dim": run["bpd"]} if "bpd" in run else {}


def _measure(samples, suffix: str = "") -> dict[str, float]:
    measured = image_sample_metrics(np.asarray(samples), "mnist5k")
    return {
        f"Fréchet distance{suffix}": measured["frechet_distance"],
        f"classes covered{suffix}": measured["classes_covered"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    parser.add_argument("--minutes", type=float, required=True, help="training wall budget")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument(
        "--test-stride", type=int, default=1,
        help="evaluate every n-th test image (the split is sorted by class: n=5 keeps 20 a class)",
    )  # fmt: skip
    parser.add_argument("--name", help="the record's and figure's name (default: the experiment's)")
    parser.add_argument("--workdir", help="default runs/mnist5k/<name>")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from the workdir's checkpoint (the minutes then count this call only)",
    )  # fmt: skip
    args = parser.parse_intermixed_args(argv)
    name = args.name or args.experiment.replace(":", "_")
    workdir = Path(args.workdir or f"runs/mnist5k/{name}")
    if not args.resume:
        shutil.rmtree(workdir, ignore_errors=True)
    config = load_experiment_config(args.experiment, ["train.eval_every=0", *args.overrides])
    config.train.progress = False
    exp = build_experiment(config)

    # The test split that fit's final evaluation (the one recorded) sees: every n-th image.
    if args.test_stride < 1:
        parser.error(f"--test-stride must be a positive int, got {args.test_stride}")
    dataset = exp.dataset.test_subset(slice(None, None, args.test_stride))
    test = dataset.arrays("test")
    load_before = os.getloadavg()
    start = time.perf_counter()
    # The budget's SIGTERM stops training (fit catches it while training); one arriving later,
    # during the final evaluation, is ignored.
    previous_handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    timer = threading.Timer(args.minutes * 60, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        result = fit(
            exp.objective, dataset, exp.tx, exp.train, workdir=workdir,
            run_config=config_to_dict(config),
        )  # fmt: skip
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous_handler)
    if result.stopped_early and "received SIGTERM" not in result.stopped_early:
        print(f"training failed: {result.stopped_early}", file=sys.stderr)
        return 1
    state = result.state
    steps = int(state.step)
    run = result.eval_metrics
    if result.stopped_early:  # stopped by the budget: fit did not evaluate
        run = evaluate_dataset(
            make_eval_step(exp.objective.evaluate), state, test,
            batch_size=exp.train.eval_batch_size, key=run_keys(exp.train.members[0][0])[2],
        )  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    load_after = os.getloadavg()
    exp.figures(state, workdir)
    samples = exp.sample(state, jax.random.PRNGKey(0), args.num_samples)
    np.save(workdir / "samples.npy", samples)
    family = config.family
    metrics = {
        "train steps": steps,
        "train + test wall-clock (min)": round(minutes, 1),
        **_test_metrics(run, family, int(np.prod(samples.shape[1:]))),
        **_measure(samples),
    }
    if family == "vae":  # its samples are binary; its decoder means (x 255) measured too
        means = exp.objective.sample(
            state.eval_params, state.model_state, jax.random.PRNGKey(0), args.num_samples,
            means=True,
        )  # fmt: skip
        metrics.update(_measure(np.asarray(means) * 255.0, " (decoder means)"))
    figure = REPO_ROOT / "docs" / "figures" / f"mnist5k_{name}.png"
    shutil.copyfile(workdir / "samples.png", figure)
    record = make_record(
        command=shlex.join(["python", "-m", "experiments.mnist5k_results", *argv]),
        config=config_to_dict(config), metrics=metrics, experiment=args.experiment,
        group="mnist5k", title="MNIST-5k: short CPU runs, not converged",
        load_average_before=list(load_before), load_average_after=list(load_after),
        test_metrics={k: float(v) for k, v in run.items()}, num_samples=args.num_samples,
        test_images=len(test["x"]), resumed=args.resume,
        figure=str(figure.relative_to(REPO_ROOT)),
    )  # fmt: skip
    path = write_record(REPO_ROOT / "docs" / "records" / "mnist5k" / f"{name}.json", record)
    print(json.dumps({"record": str(path), **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
