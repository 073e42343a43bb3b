"""Smoke test of benchmarks/flows.py: the quick settings run and report every model; the distrax
peer computes the same log-density as jgen's RealNVP; the optional torch peers (zuko, nflows;
skipped without torch) compute a valid change of variables. Nothing timed is asserted."""

import json

import jax
import numpy as np
import pytest

from benchmarks import flows
from jgen.distributions import Flow


def test_quick_run_reports_every_model_and_dim(tmp_path):
    dims = (3,)  # one small odd size keeps the test short; rows are per (model, D)
    record = flows.main(["--quick", "--dims", *map(str, dims), "--out", str(tmp_path)])
    result = record["metrics"]
    for key in ("command", "commit", "date", "hardware", "load_average", "versions", "threads"):
        assert key in record
    assert isinstance(record["publishable"], bool)

    assert result["config"]["batch"] == 16
    assert result["config"]["repeats"] == 1
    assert result["config"]["steps"] == 2
    models = flows.MODELS + (flows.TORCH_MODELS if flows.torch_available() else ())
    assert (result["torch_skipped"] is None) == flows.torch_available()
    rows = {(r["model"], r["dim"]): r for r in result["rows"]}
    assert set(rows) == {(m, d) for m in models for d in dims}
    for row in rows.values():
        assert len(row["repeat_ms_per_step"]) == 1
        assert row["median_ms_per_step"] > 0 and row["num_params"] > 0
        assert np.isfinite(row["first_loss"]) and np.isfinite(row["last_loss"])
    for d in dims:
        # jgen, distrax's SplitCoupling and flowjax split the vector, so their sizes match the
        # floor's MLPs (+ the scale vectors of jgen and the distrax model).
        floor = rows[(flows.FLOOR, d)]["num_params"]
        assert rows[(flows.JGEN_TRAINER, d)]["num_params"] > floor
        jgen_params = rows[(flows.JGEN_TRAINER, d)]["num_params"]
        assert rows[(flows.DISTRAX, d)]["num_params"] == jgen_params
        assert rows[(flows.JGEN_SCAN, d)]["num_params"] == jgen_params
    assert {(t["dim"], t["jgen"]) for t in result["targets"]} == {
        (d, j) for d in dims for j in (flows.JGEN_TRAINER, flows.JGEN_PLAIN, flows.JGEN_SCAN)
    }

    for model in set(models) & set(flows.TORCH_MODELS):
        for d in dims:  # the same conditioner sizes as the floor's MLPs
            assert rows[(model, d)]["num_params"] == rows[(flows.FLOOR, d)]["num_params"]
            assert rows[(model, d)]["jgen_speedup"] > 0

    saved = json.loads((tmp_path / "flows.json").read_text())
    assert len(saved["metrics"]["rows"]) == len(models) * len(dims)
    table = (tmp_path / "flows.md").read_text()
    for model in models:
        assert table.count(f"| {model} |") == len(dims)


@pytest.mark.parametrize("name", ["zuko", "nflows"])
def test_torch_peer_log_prob_is_a_change_of_variables(name):
    """The torch peer's log p(x) = log N(f(x); 0, I) + log|det ∂f/∂x| for its normalising map f,
    with the determinant from the autodiff Jacobian (random weights: not the identity)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("zuko")
    pytest.importorskip("nflows")
    dim = 4
    cfg = flows.BenchConfig(num_layers=3, hidden_dims=(8, 8))
    model = {"zuko": flows.zuko_model, "nflows": flows.nflows_model}[name](dim, cfg)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.5 * torch.randn_like(param))
    x = torch.randn(5, dim, dtype=torch.float64)
    model = model.double()
    if name == "zuko":
        flow = model()
        log_prob, to_base = flow.log_prob(x), flow.transform
    else:
        log_prob = model.log_prob(x)

        def to_base(v):
            return model._transform(v)[0]

    for i in range(len(x)):
        z = to_base(x[i : i + 1])[0]
        jac = torch.autograd.functional.jacobian(lambda v: to_base(v[None])[0], x[i])
        base = -0.5 * (z**2).sum() - 0.5 * dim * np.log(2 * np.pi)
        by_hand = base + torch.linalg.slogdet(jac)[1]
        assert abs(by_hand.item() - log_prob[i].item()) < 1e-8
    base = -0.5 * (x**2).sum(-1) - 0.5 * dim * np.log(2 * np.pi)
    assert not torch.allclose(log_prob.detach(), base, atol=1e-3)  # not the identity


def test_distrax_peer_is_the_same_model_as_jgen():
    """The distrax SplitCoupling model with jgen's weights is jgen's RealNVP with mask 'half'."""
    dim, num_layers = 5, 3
    cfg = flows.BenchConfig(num_layers=num_layers, hidden_dims=(8, 8), jgen_mask="half")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, dim)).astype(np.float32)
    flow = flows._jgen_flow(dim, cfg)
    params = flows._jgen_params(flow, x, seed=0)
    # Random weights everywhere (the zero-initialised last layers would make both identities).
    params = jax.tree.map(
        lambda leaf: (0.5 * rng.standard_normal(leaf.shape)).astype(np.float32), params
    )
    jgen_log_prob = jax.jit(lambda p: flow.apply({"params": p}, x, method=Flow.log_prob))(params)

    model = flows.DistraxRealNVP(dim, num_layers, (8, 8), flows.ACTIVATIONS[cfg.activation])
    layers = [params["bijector"][f"{i}_affine_coupling"] for i in range(num_layers)]
    distrax_params = {f"conditioners_{i}": layer for i, layer in enumerate(layers)}
    distrax_log_prob = jax.jit(lambda p: model.apply({"params": p}, x))(distrax_params)

    base_log_prob = -0.5 * np.sum(x**2, axis=-1) - 0.5 * dim * np.log(2 * np.pi)
    assert not np.allclose(jgen_log_prob, base_log_prob, atol=1e-3)  # not the identity
    np.testing.assert_allclose(distrax_log_prob, jgen_log_prob, rtol=1e-5, atol=1e-5)


def test_cnf_benchmark_models_are_the_same_function():
    """benchmarks/cnf_step.py: jgen's CNF and the hand-written diffrax model give the same
    log-likelihood from the shared weights (so their times and NFE compare like for like)."""
    import jax.numpy as jnp

    from benchmarks import cnf_step

    cfg = cnf_step.CNFBenchConfig(batch=8, hidden_dims=(8,), rtol=1e-6, atol=1e-6)
    x = cnf_step._data(cfg)
    params = cnf_step._initial_params(cfg, x)
    objective = cnf_step._jgen_objective(cfg)
    jgen_lp = objective.log_prob(params, {}, jnp.asarray(x))
    hand_lp, _ = cnf_step._diffrax_log_prob(cfg, params["bijector"]["vector_field"], jnp.asarray(x))
    base = -0.5 * np.sum(x**2, axis=-1) - np.log(2 * np.pi)
    assert not np.allclose(jgen_lp, base, atol=1e-3)  # the flow is not the identity
    np.testing.assert_allclose(hand_lp, jgen_lp, rtol=1e-4, atol=1e-4)


def test_cnf_grid_conclusions_from_rows():
    """benchmarks/cnf_solvers.py's computed answers, on made-up rows (nothing is run): the
    Hutchinson crossover dimension, the cost slopes in D and the error-time Pareto front."""
    from benchmarks import cnf_solvers

    def row(problem, dim, estimator, step_ms, **kw):
        base = dict(problem=problem, dim=dim, batch=4, solver="tsit5", tol=1e-5)
        base.update(adjoint="recursive", estimator=estimator, nfe_forward=10.0)
        base.update(density_ms=step_ms / 4, step_ms=step_ms, compile_s=1.0, temp_mib=1.0)
        base.update(error=0.0, probe_std=0.0, grad_rel_var=0.0)
        return {**base, **kw}

    dims = (2, 4, 8, 16)
    rows = [row(f"synthetic D={d}", d, "exact", 2.0 * d) for d in dims]
    rows += [row(f"synthetic D={d}", d, "hutchinson-rademacher", 10.0) for d in dims]
    toy = "toy"
    rows += [
        row(toy, 2, "exact", 5.0, tol=1e-3, error=1e-2),
        row(toy, 2, "exact", 9.0, tol=1e-5, error=1e-6),
        row(toy, 2, "exact", 7.0, tol=1e-3, error=1e-1, solver="dopri5"),  # dominated
        row(toy, 2, "exact", 30.0, tol=1e-3, error=1e-2, adjoint="backsolve", temp_mib=8.0),
        row(toy, 2, "exact", 45.0, tol=1e-5, error=1e-6, adjoint="backsolve", temp_mib=8.0),
    ]
    text = "\n".join(cnf_solvers.conclusions(rows))
    assert "hutchinson-rademacher vs exact, train step: faster from D = 8 on" in text
    assert "exact: from D = 2 to D = 16 (x8) the train step went 4.0 -> 32.0 ms (log-log " in text
    assert "slope 1.00)" in text and "JVPs per solve 20 -> 160 (slope 1.00)" in text
    assert "recursive checkpointing 1.0 MiB vs backsolve 8.0 MiB" in text
    assert "backsolve's step took 5.0-6.0x recursive's time" in text
    assert "Pareto front of error vs step time (exact trace, recursive): tsit5 tol 0.001 " in text
    assert "dopri5 tol" not in text.split("Pareto front")[1]
    table = cnf_solvers.render_markdown(rows, "header")
    assert table.count("| synthetic D=") == len(rows) - 5


def test_accelerator_smoke_run_in_a_worker_process_with_a_profile(tmp_path):
    """benchmarks/accelerator.py --smoke: one family in its worker process (the default path
    of a GPU run), at two batch sizes, and the profile summary of its step (in-process)."""
    from benchmarks import accelerator

    argv = ["--smoke", "--families", "made", "--peers", "none", "--out", str(tmp_path)]
    argv += ["--profile", str(tmp_path / "trace"), "--profile-family", "made"]
    record = accelerator.main(argv)

    rows = record["metrics"]["rows"]
    assert [(r["family"], r["batch"], r["status"]) for r in rows] == [
        ("made", 16, "ok"),
        ("made", 32, "ok"),
    ]
    for row in rows:
        assert row["steps_per_s"] > 0 and row["compile_s"] > 0 and row["num_params"] > 0
        assert np.isfinite(row["first_loss"]) and np.isfinite(row["last_loss"])
        # MADE's step has no loop, no conditional (the trainer's non-finite guard selects
        # instead of branching: guard='select', the default) and no host callback.
        assert (row["while_loops"], row["conditionals"], row["host_callbacks"]) == (0, 0, 0)
    assert {"backend", "device", "cpu_count"} <= set(record["hardware"])
    assert record["versions"]["jax"] == jax.__version__
    assert len(record["load_average"]["before"]) == 3 and "publishable" in record
    saved = json.loads((tmp_path / "accelerator-cpu-smoke.json").read_text())
    assert len(saved["metrics"]["rows"]) == 2
    assert saved["command"].startswith("python benchmarks/accelerator.py --smoke")
    table = (tmp_path / "accelerator-cpu-smoke.md").read_text()
    assert table.count("| made | jgen (trainer) |") == 2
    profile = record["metrics"]["profile"]
    assert "steps profiled: 5" in profile
    assert (tmp_path / "trace" / "summary.txt").read_text() == profile


def test_accelerator_peers_budget_and_comparison_table(tmp_path):
    """A peer of benchmarks/flows.py timed by accelerator.py (the existing quick run of
    flows.py builds the others); a family whose budget is spent is skipped without being built;
    two runs render side by side with their ratio."""
    from benchmarks import accelerator, flows

    settings = accelerator.RunSettings.for_smoke()
    rows = accelerator.bench_peers("flows", settings, models=[flows.FLOOR])
    assert [(r["model"], r["batch"], r["status"]) for r in rows] == [("MLP floor D=3", 16, "ok")]
    assert rows[0]["steps_per_s"] > 0 and rows[0]["num_params"] > 0

    skipped = accelerator.bench_family("made", "made_digits", settings, deadline=0.0)
    assert [r["status"].split(" ")[0] for r in skipped] == ["skipped", "skipped"]

    def run(backend, rate):
        row = dict(family="made", model="jgen (trainer)", multiplier=1, batch=64)
        row.update(status="ok", steps_per_s=rate)
        hardware = dict(backend=backend, device=backend.upper(), cpu_count=2)
        load = dict(before=[1.0], after=[1.0], max_load1_during=1.0, other_cpu_share=0.0)
        load.update(publishable=True, not_publishable_because=[])
        return dict(hardware=hardware, date="d", load_average=load, versions={"jax": "x"},
                    command="c", metrics=dict(rows=[row]))  # fmt: skip

    table = accelerator.render_markdown([run("gpu", 300.0), run("cpu", 20.0)])
    assert "| made | jgen (trainer) | 64 | 300.0 | 20.0 | 15.0x |" in table


def test_cnf_loops_checkpoint_count_is_equinox_default():
    """benchmarks/cnf_loops.py's number of checkpoints for a max_steps (equinox's default for
    diffrax's RecursiveCheckpointAdjoint): the least c with 2 * max_steps < (c + 1)(c + 2)."""
    from benchmarks.cnf_loops import default_checkpoints

    assert default_checkpoints(4096) == 90 and default_checkpoints(64) == 10
    for max_steps in (2, 3, 10, 64, 4096):
        c = default_checkpoints(max_steps)
        assert 2 * max_steps < (c + 1) * (c + 2) and not 2 * max_steps < c * (c + 1)


def test_spline_benchmark_quick_run_reports_every_model(tmp_path):
    """benchmarks/splines.py --quick: a record with every model's step time and test NLL
    (zuko's row only when torch and zuko are installed)."""
    from benchmarks import splines

    record = splines.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "splines_quick.json").is_file()
    assert isinstance(record["publishable"], bool)
    rows = {row["model"]: row for row in record["metrics"]["rows"]}
    assert set(rows) == set(splines.BUILDERS)
    for row in rows.values():
        assert row["median_ms_per_step"] > 0 and row["num_params"] > 0
        assert np.isfinite(row["test_nll"]) and row["steps"] == 3
    assert (splines.ZUKO in rows) == splines.torch_available()
    assert record["metrics"]["target"]["fastest_peer"] in set(rows) - {splines.JGEN}


def test_publish_summary_from_records_is_publishable_only_if_every_record_is(tmp_path):
    """benchmarks/publish.py --from-records: SUMMARY.md's verdict is the records' joint verdict."""
    from benchmarks import publish

    def write(name, publishable):
        reasons = [] if publishable else ["1-min load before the run 3.0 > 0.5 x 2 cores"]
        load = dict(before=[0.5, 0.5, 0.5], after=[0.6, 0.5, 0.5], max_load1_during=1.2,
                    other_cpu_share=0.0, publishable=publishable,
                    not_publishable_because=reasons)  # fmt: skip
        record = dict(commit="abc", date="d", load_average=load, publishable=publishable,
                      hardware=dict(cpu="CPU", cores_available=2),
                      versions=dict(jax="x", torch="y"))  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
        (tmp_path / f"{name}.md").write_text(f"table of {name}")

    names = [name for name, _, _ in publish.RUNS]
    for name in names:
        write(name, True)
    assert publish.main(["--from-records", "--out", str(tmp_path)])["publishable"]
    assert (tmp_path / "SUMMARY.md").read_text().startswith("# Benchmark run: publishable")
    write(names[-1], False)
    assert not publish.main(["--from-records", "--out", str(tmp_path)])["publishable"]
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert summary.startswith("# Benchmark run: NOT PUBLISHABLE") and "3.0 > 0.5" in summary
