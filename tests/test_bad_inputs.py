"""Bad inputs at every public entry point: one table through the Python API, one through the CLI.

Each row asserts the error type (exit code 2 and a one-line ``jgen CMD: error: ...`` for the
CLI) and message fragments that name what was expected and what was given.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.cli import main
from jgen.data import Dataset, load_dataset
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.train import TrainConfig, fit, make_optimizer

KEY = jax.random.PRNGKey(0)
GOOD = jnp.zeros((4, 2))


@functools.cache
def _flow():
    """One tiny RealNVP flow on R^2 and its variables, shared by every row."""
    flow = Flow(jb.realnvp(2, num_layers=2, hidden_dims=(4,)), event_shape=(2,))
    return flow, flow.init(KEY, GOOD, method=Flow.log_prob)


def log_prob(x, context=None):
    flow, variables = _flow()
    return flow.apply(variables, x, context, method=Flow.log_prob)


def sample(num, **kw):
    flow, variables = _flow()
    return flow.apply(variables, KEY, num, method=Flow.sample, **kw)


def distrax_forward(x):
    flow, variables = _flow()
    bound = jb.to_distrax(flow, variables)
    return bound.forward_and_log_det(x)


def distrax_inverse(y):
    flow, variables = _flow()
    bound = jb.to_distrax(flow, variables)
    return bound.inverse_and_log_det(y)


def _cnf_log_prob(x):
    from jgen.cnf import MLPField, make_cnf

    flow = Flow(make_cnf(MLPField((4,)), (2,)), (2,))
    variables = flow.init(KEY, GOOD, method=Flow.log_prob)
    return flow.apply(variables, x, method=Flow.log_prob)


def objective_init(batch, **kw):
    return DensityObjective(_flow()[0], **kw).init(KEY, batch)


def fit_on(train, test=None, *, num_levels=None, batch_size=4):
    test = train if test is None else test
    dataset = Dataset(name="bad", train=train, test=test, num_levels=num_levels)
    config = TrainConfig(steps=1, batch_size=batch_size, progress=False)
    tx = make_optimizer(learning_rate=1e-3, total_steps=1)
    return fit(DensityObjective(_flow()[0], num_levels=num_levels), dataset, tx, config)


F32 = np.float32
VALID = np.zeros((8, 2), F32)
NAN_ROW = np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 3.0], [4.0, 5.0]], F32)
LEVELS = np.array([[0, 1], [2, 3], [7, 0], [1, 1]], np.uint8)  # 7 is out of range for K = 4

# id, call, error type, fragments (expected ..., got ...)
API_CASES = [
    # Flow.log_prob
    ("log_prob-rank", lambda: log_prob(jnp.float32(1.0)), ValueError,
     ["x: expected shape (..., 2)", "at least 1 axis", "got shape ()"]),
    ("log_prob-event-size", lambda: log_prob(jnp.zeros((4, 3))), ValueError,
     ["event shape (2,)", "got shape (4, 3)"]),
    ("log_prob-int", lambda: log_prob(jnp.zeros((4, 2), jnp.int32)), TypeError,
     ["expected a real floating-point dtype", "got int32"]),
    ("log_prob-complex", lambda: log_prob(jnp.zeros((4, 2), jnp.complex64)), TypeError,
     ["expected a real floating-point dtype", "got complex64", "complex values are not supported"]),
    ("log_prob-nan", lambda: log_prob(jnp.asarray(NAN_ROW)), ValueError,
     ["x: expected finite values", "got 1 non-finite value(s) (1 NaN, 0 inf)"]),
    ("log_prob-inf", lambda: log_prob(jnp.array([[jnp.inf, 0.0], [-jnp.inf, 1.0]])), ValueError,
     ["x: expected finite values", "got 2 non-finite value(s) (0 NaN, 2 inf)"]),
    ("log_prob-numpy-nan", lambda: log_prob(NAN_ROW), ValueError,
     ["expected finite values", "1 NaN"]),
    ("log_prob-empty", lambda: log_prob(jnp.zeros((0, 2))), ValueError,
     ["expected a non-empty batch", "got shape (0, 2)"]),
    ("log_prob-context-shape", lambda: log_prob(GOOD, jnp.zeros((3, 1))), ValueError,
     ["context must have shape (*batch_shape, K) = (4, K)", "got (3, 1)"]),
    ("log_prob-context-nan", lambda: log_prob(GOOD, jnp.full((4, 1), jnp.nan)), ValueError,
     ["context: expected finite values", "4 NaN"]),
    ("log_prob-list", lambda: log_prob([[0.0, 0.0]]), TypeError,
     ["x: expected an array", "got list"]),
    # Flow.sample
    ("sample-zero", lambda: sample(0), ValueError,
     ["num_samples must be a positive int", "got 0"]),
    ("sample-non-int", lambda: sample(2.5), TypeError,
     ["num_samples must be a positive int", "got 2.5 (float)"]),
    ("sample-bool", lambda: sample(True), TypeError,
     ["num_samples must be a positive int", "got True"]),
    ("sample-int-dtype", lambda: sample(3, dtype=jnp.int32), TypeError,
     ["dtype: expected a real floating-point dtype", "got int32"]),
    # to_distrax: the bound bijector checks its inputs
    ("to_distrax-event-size", lambda: distrax_forward(jnp.zeros((4, 3))), ValueError,
     ["to_distrax(Chain): x: expected shape (..., 2)", "got shape (4, 3)"]),
    ("to_distrax-rank", lambda: distrax_inverse(jnp.float32(0.0)), ValueError,
     ["y: expected at least 1 axis", "got shape ()"]),
    ("to_distrax-int", lambda: distrax_inverse(jnp.zeros((4, 2), jnp.int32)), TypeError,
     ["y: expected a real floating-point dtype", "got int32"]),
    ("to_distrax-nan", lambda: distrax_inverse(jnp.asarray(NAN_ROW)), ValueError,
     ["y: expected finite values", "1 NaN"]),
    # DensityObjective.init
    ("objective-empty", lambda: objective_init({"x": np.zeros((0, 2), F32)}), ValueError,
     ["batch['x']: expected a non-empty batch", "got shape (0, 2)"]),
    ("objective-no-x", lambda: objective_init({"data": VALID}), ValueError,
     ["expected an entry 'x'", "got keys ['data']"]),
    ("objective-no-context", lambda: objective_init({"x": VALID}, context_key="label"), ValueError,
     ["expected an entry 'label' (context_key)", "got keys ['x']"]),
    ("objective-complex", lambda: objective_init({"x": VALID.astype(np.complex64)}), TypeError,
     ["expected a real (integer or floating-point) dtype", "got complex64"]),
    ("objective-nan", lambda: objective_init({"x": NAN_ROW}), ValueError,
     ["batch['x']: expected finite values", "1 NaN"]),
    ("objective-event-size", lambda: objective_init({"x": np.zeros((4, 5), F32)}), ValueError,
     ["event shape (2,)", "got shape (4, 5)"]),
    # fit: the dataset is checked before anything is compiled
    ("fit-empty-train", lambda: fit_on(np.zeros((0, 2), F32), VALID), ValueError,
     ["train split: expected at least 1 example", "got shape (0, 2)"]),
    ("fit-empty-test", lambda: fit_on(VALID, np.zeros((0, 2), F32)), ValueError,
     ["test split: expected at least 1 example", "got shape (0, 2)"]),
    ("fit-nan-train", lambda: fit_on(NAN_ROW, VALID), ValueError,
     ["train split: expected finite values", "1 NaN"]),
    ("fit-inf-test", lambda: fit_on(VALID, np.full((2, 2), np.inf, F32)), ValueError,
     ["test split: expected finite values", "4 inf"]),
    ("fit-levels-out-of-range", lambda: fit_on(LEVELS, LEVELS[:2], num_levels=4), ValueError,
     ["train split: expected integer levels 0..3 (num_levels=4)", "got values in 0..7"]),
    ("fit-negative-levels", lambda: fit_on(np.array([[-1, 0]] * 4), num_levels=4), ValueError,
     ["expected integer levels 0..3", "got values in -1..0"]),
    ("fit-fractional-levels", lambda: fit_on(np.full((4, 2), 0.5, F32), num_levels=4), ValueError,
     ["expected integer levels 0..3", "non-integer value(s), e.g. 0.5"]),
    ("fit-complex", lambda: fit_on(VALID.astype(np.complex64)), TypeError,
     ["expected a real (integer or floating-point) dtype", "got complex64"]),
    ("fit-batch-too-large", lambda: fit_on(VALID, batch_size=16), ValueError,
     ["batch_size: expected at most the 8 examples", "got 16"]),
    # data, optimiser, loop settings
    ("load_dataset-unknown", lambda: load_dataset("nope"), ValueError,
     ["unknown dataset 'nope'", "known datasets: moons"]),
    ("load_dataset-option", lambda: load_dataset("digits", n_train=3), TypeError,
     ["unknown option(s) ['n_train']", "it accepts ['n_test', 'split_seed']"]),
    ("make_optimizer-schedule",
     lambda: make_optimizer(learning_rate=1e-3, total_steps=10, schedule="nope"), ValueError,
     ["schedule must be one of", "got 'nope'"]),
    ("make_optimizer-lr", lambda: make_optimizer(learning_rate=-1.0, total_steps=10), ValueError,
     ["learning_rate must be a positive number", "got -1.0"]),
    ("make_optimizer-nan-lr",
     lambda: make_optimizer(learning_rate=float("nan"), total_steps=10), ValueError,
     ["make_optimizer: learning_rate must be a positive number", "got nan"]),
    ("make_optimizer-inf-lr",
     lambda: make_optimizer(learning_rate=float("inf"), total_steps=10), ValueError,
     ["make_optimizer: learning_rate must be a positive number", "got inf"]),
    ("make_optimizer-total-steps", lambda: make_optimizer(learning_rate=1e-3, total_steps=-5),
     ValueError, ["make_optimizer: total_steps must be a positive int", "got -5"]),
    ("make_optimizer-warmup",
     lambda: make_optimizer(learning_rate=1e-3, total_steps=10, warmup_steps=-5), ValueError,
     ["make_optimizer: warmup_steps must be a non-negative int", "got -5"]),
    ("make_optimizer-clip-norm",
     lambda: make_optimizer(learning_rate=1e-3, total_steps=10, clip_norm=-1.0), ValueError,
     ["make_optimizer: clip_norm must be a non-negative number", "got -1.0"]),
    ("make_optimizer-b2", lambda: make_optimizer(learning_rate=1e-3, total_steps=10, b2=1.0),
     ValueError, ["make_optimizer: b2 must be a number in [0, 1)", "got 1.0"]),
    ("fit-extra-axis", lambda: fit_on(np.zeros((8, 1, 2), F32)), ValueError,
     ["batch['x']: expected shape (N, 2)", "got shape (4, 1, 2)", "2 example axes"]),
    ("Planar-dim", lambda: Flow(jb.Planar(dim=3), (2,)).init(KEY, GOOD, method=Flow.log_prob),
     ValueError, ["Planar(dim=3): input: expected shape (..., 3)", "got shape (4, 2)"]),
    ("Radial-dim", lambda: Flow(jb.Radial(dim=3), (2,)).init(KEY, GOOD, method=Flow.log_prob),
     ValueError, ["Radial(dim=3): input: expected shape (..., 3)", "got shape (4, 2)"]),
    ("cnf-bfloat16", lambda: _cnf_log_prob(jnp.zeros((4, 2), jnp.bfloat16)), TypeError,
     ["CNF: input must be float32 or float64 with adaptive step control", "got dtype bfloat16"]),
    ("log_prob-unexpected-context", lambda: log_prob(GOOD, jnp.zeros((4, 3))), ValueError,
     ["context: expected the context the flow's parameters were initialised with",
      "got a context of shape (4, 3)"]),
    ("sample-unexpected-context", lambda: sample(4, context=jnp.zeros((4, 3))), ValueError,
     ["context: expected the context the flow's parameters were initialised with",
      "got a context of shape (4, 3)"]),
    ("random_permutation-traced", lambda: jax.jit(lambda k: jb.random_permutation(k, 4))(KEY),
     TypeError, ["random_permutation: seed_or_key must be concrete", "got a traced value"]),
    ("TrainConfig-steps", lambda: TrainConfig(steps=0, batch_size=8), ValueError,
     ["steps must be positive", "got 0"]),
    ("TrainConfig-type", lambda: TrainConfig(steps=10, batch_size="8"), TypeError,
     ["TrainConfig.batch_size must be an int", "got '8'"]),
    ("TrainConfig-negative", lambda: TrainConfig(steps=1, batch_size=8, log_every=-1),
     ValueError, ["log_every must be >= 0", "got -1"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "call,error,fragments", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_python_api_rejects_bad_input(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_value_checks_are_skipped_under_jit_and_shape_checks_are_not():
    flow, variables = _flow()
    jitted = jax.jit(lambda x: flow.apply(variables, x, method=Flow.log_prob))
    # Under jit the values are unknown: no NaN check, the NaN simply propagates ...
    assert np.isnan(np.asarray(jitted(jnp.asarray(NAN_ROW)))[1])
    # ... while shapes and dtypes are still checked, once, at trace time.
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        jitted(jnp.zeros((4, 3)))


def test_fit_fails_before_creating_the_workdir(tmp_path):
    dataset = Dataset(name="bad", train=NAN_ROW, test=VALID)
    config = TrainConfig(steps=1, batch_size=4, progress=False)
    tx = make_optimizer(learning_rate=1e-3, total_steps=1)
    with pytest.raises(ValueError, match="expected finite values"):
        fit(DensityObjective(_flow()[0]), dataset, tx, config, workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# CLI ----------------------------------------------------------------------------------------


def _write_config(workdir, **data):
    """A run directory whose config.json is gaussian_digits with another data section."""
    from jgen.config import load_experiment_config
    from jgen.experiment import config_to_dict

    config = config_to_dict(load_experiment_config("gaussian_digits", smoke=True))
    config["data"] = data
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(config))
    return workdir


def _malformed_mnist(root):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images", "t10k-images"):
        (folder / f"{name}-idx3-ubyte").write_bytes(b"\x08\x03not an idx file")
    for name in ("train-labels", "t10k-labels"):
        (folder / f"{name}-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    return root


# id, argv ({tmp} is the test's tmp dir), data dir setup, fragments of the error line
CLI_CASES = [
    ("unknown-experiment", ["train", "nope"], None,
     ["unknown experiment 'nope'", "known: ", "realnvp_2d"]),
    ("unknown-variant", ["train", "realnvp_2d:nowhere"], None,
     ["takes one of moons", "got 'nowhere'"]),
    ("unknown-config-key", ["train", "realnvp_2d:moons", "train.stepz=3"], None,
     ["unknown config key 'train.stepz'", "keys here: batch_size"]),
    ("unknown-config-section", ["train", "realnvp_2d:moons", "trian.steps=3"], None,
     ["unknown config section 'trian'"]),
    ("wrong-value-type", ["train", "realnvp_2d:moons", "model.num_layers=abc"], None,
     ["expected a value of type int", "got str"]),
    ("bad-train-value", ["train", "realnvp_2d:moons", "--smoke", "train.steps=0"], None,
     ["steps must be positive", "got 0"]),
    ("bad-schedule", ["train", "realnvp_2d:moons", "--smoke", "optim.schedule='nope'"], None,
     ["schedule must be one of", "got 'nope'"]),
    ("bad-model-kind", ["train", "realnvp_2d:moons", "--smoke", "model.kind='naf'"], None,
     ["expected 'realnvp', 'multiscale_realnvp', 'nsf', 'maf', 'glow', 'residual' or",
      "unknown model.kind 'naf'"]),
    # An overflowing literal parses to inf: rejected before anything is built (issue #23).
    ("inf-learning-rate", ["train", "realnvp_2d:moons", "--smoke", "optim.learning_rate=1e999"],
     None, ["learning_rate must be a positive number", "got inf"]),
    ("negative-warmup", ["train", "realnvp_2d:moons", "--smoke", "optim.warmup_steps=-5"], None,
     ["warmup_steps must be a non-negative int", "got -5"]),
    ("negative-seed", ["train", "realnvp_2d:moons", "--smoke", "train.seed=-1"], None,
     ["seed must be >= 0", "got -1"]),
    ("negative-clip-norm", ["train", "realnvp_2d:moons", "--smoke", "optim.clip_norm=-1.0"], None,
     ["clip_norm must be a non-negative number", "got -1.0"]),
    ("data-options-of-another-set", ["train", "realnvp_2d:moons", "data.name='mnist'"], None,
     ["dataset 'mnist' got unknown option(s) ['n_train']", "it accepts ['n_test']"]),
    ("unknown-dataset", ["train", "gaussian_digits", "data.name='nope'"], None,
     ["unknown dataset 'nope'", "known datasets:"]),
    ("missing-data-files", ["train", "gaussian_digits", "data.name='mnist'"], "empty",
     ["MNIST: expected file(s) not found", "{tmp}/data/mnist/train-images-idx3-ubyte"]),
    ("malformed-data-file", ["train", "gaussian_digits", "data.name='mnist'"], "malformed",
     ["{tmp}/data/mnist/train-images-idx3-ubyte", "bad IDX magic number 0x08036e6f"]),
    ("empty-train-split",
     ["train", "realnvp_2d:moons", "--smoke", "data.n_train=0", "--workdir", "{tmp}/run"], None,
     ["train split: expected at least 1 example", "got shape (0, 2)"]),
    ("batch-larger-than-data",
     ["train", "realnvp_2d:moons", "--smoke", "train.batch_size=512", "--workdir", "{tmp}/run"],
     None, ["batch_size: expected at most the 256 examples", "got 512"]),
    ("workdir-is-a-file", ["train", "realnvp_2d:moons", "--smoke", "--workdir", "{tmp}/a_file"],
     None, ["--workdir: expected a directory", "got {tmp}/a_file, an existing file"]),
    ("workdir-below-a-file",
     ["train", "realnvp_2d:moons", "--smoke", "--workdir", "{tmp}/a_file/run"], None,
     ["--workdir: expected a path below a directory", "{tmp}/a_file is a file"]),
    ("eval-missing-workdir", ["eval", "--workdir", "{tmp}/missing"], None,
     ["{tmp}/missing/config.json not found", "is {tmp}/missing a jgen run directory?"]),
    ("eval-missing-data", ["eval", "--workdir", "{tmp}/mnist_run"], "empty",
     ["MNIST: expected file(s) not found", "{tmp}/data/mnist/t10k-images-idx3-ubyte"]),
    ("eval-malformed-config", ["eval", "--workdir", "{tmp}/broken_run"], None,
     ["{tmp}/broken_run/config.json is not a valid jgen config", "Expecting value: line 1"]),
    ("sample-num-zero", ["sample", "--workdir", "{tmp}/missing", "--num", "0"], None,
     ["--num must be positive", "got 0"]),
]  # fmt: skip


@pytest.fixture
def cli_dirs(tmp_path, monkeypatch):
    """Run directories in tmp_path (cwd too, so nothing lands in the repository)."""
    monkeypatch.chdir(tmp_path)
    _write_config(tmp_path / "mnist_run", name="mnist", seed=0)
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "broken_run").mkdir()
    (tmp_path / "broken_run" / "config.json").write_text("not json")
    return tmp_path


def _run_cli(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse errors
        return exit_.code


@pytest.mark.parametrize(
    "argv,data_dir,fragments", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_rejects_bad_input(argv, data_dir, fragments, cli_dirs, monkeypatch, capsys):
    tmp = str(cli_dirs)
    if data_dir is not None:
        root = cli_dirs / "data"
        root.mkdir()
        if data_dir == "malformed":
            _malformed_mnist(root)
        monkeypatch.setenv("JGEN_DATA_DIR", str(root))
    code = _run_cli([arg.replace("{tmp}", tmp) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"jgen {argv[0]}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment.replace("{tmp}", tmp) in err, f"{fragment!r} not in {err!r}"
    assert not (cli_dirs / "run").exists(), "the run failed after creating its workdir"


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_sample_returns_the_requested_dtype(dtype):
    # Documented behaviour (Flow.sample_and_log_prob): the noise is drawn in dtype and the
    # draws and log-densities come back in it, whatever the parameters' dtype.
    flow, variables = _flow()
    x, log_prob = flow.apply(variables, KEY, 3, dtype=dtype, method=Flow.sample_and_log_prob)
    assert x.dtype == dtype and log_prob.dtype == dtype
    assert x.shape == (3, 2) and bool(jnp.all(jnp.isfinite(x)))


def test_cli_rejects_a_read_only_workdir(tmp_path, monkeypatch, capsys):
    # Root ignores permission bits, so the read-only directory is simulated where the CLI asks
    # (os.access); as another user, chmod 0o555 gives the same answer.
    import jgen.cli

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    denied = lambda path, mode: Path(path) != read_only and real_access(path, mode)
    monkeypatch.setattr(jgen.cli.os, "access", denied)
    argv = ["train", "realnvp_2d:moons", "--smoke", "--workdir", str(read_only / "run")]
    assert _run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("jgen train: error: --workdir: expected a writable directory"), err
    assert f"{read_only} is read-only" in err
    assert not (read_only / "run").exists()


def test_cli_rejects_a_non_int_num(capsys):
    assert _run_cli(["sample", "--workdir", "x", "--num", "abc"]) == 2
    assert "argument --num: invalid int value: 'abc'" in capsys.readouterr().err


def test_stochastic_estimators_without_a_trace_key_say_how_to_pass_one():
    from jgen.bijectors import PowerSeriesLogDet, ResidualBlock
    from jgen.cnf import CNF, Hutchinson, MLPField

    x = jnp.zeros((3, 2))
    cases = [
        (CNF(MLPField((4,)), (2,), trace_estimator=Hutchinson()), "ExactTrace()"),
        (ResidualBlock((2,), hidden_dims=(4,), logdet=PowerSeriesLogDet(2)), "ExactLogDet()"),
    ]
    for bijector, instead in cases:
        method = bijector.forward_and_log_det
        variables = bijector.init(jax.random.PRNGKey(0), x, method=method)
        with pytest.raises(ValueError, match="needs a PRNG key") as info:
            bijector.apply(variables, x, method=method)
        assert "rngs={'trace': key}" in str(info.value) and instead in str(info.value)
