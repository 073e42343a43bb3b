"""Smoke test of benchmarks/flows.py: the quick settings run and report every model; the distrax
peer computes the same log-density as jgen's RealNVP. Nothing timed is asserted."""

import json

import jax
import numpy as np

from benchmarks import flows
from jgen.distributions import Flow


def test_quick_run_reports_every_model_and_dim(tmp_path):
    dims = (3,)  # one small odd size keeps the test short; rows are per (model, D)
    result = flows.main(["--quick", "--dims", *map(str, dims), "--out", str(tmp_path)])

    assert result["config"]["batch"] == 16
    assert result["config"]["repeats"] == 1
    assert result["config"]["steps"] == 2
    rows = {(r["model"], r["dim"]): r for r in result["rows"]}
    assert set(rows) == {(m, d) for m in flows.MODELS for d in dims}
    for row in rows.values():
        assert len(row["repeat_ms_per_step"]) == 1
        assert row["median_ms_per_step"] > 0 and row["num_params"] > 0
        assert np.isfinite(row["first_loss"]) and np.isfinite(row["last_loss"])
    for d in dims:
        # jgen and flowjax split the vector, so their sizes match the floor's MLPs (+ jgen's
        # scale vectors); distrax's masked conditioners are larger.
        floor = rows[(flows.FLOOR, d)]["num_params"]
        assert rows[(flows.JGEN_TRAINER, d)]["num_params"] > floor
        assert rows[(flows.DISTRAX, d)]["num_params"] > rows[(flows.JGEN_TRAINER, d)]["num_params"]
    assert {(t["dim"], t["jgen"]) for t in result["targets"]} == {
        (d, j) for d in dims for j in (flows.JGEN_TRAINER, flows.JGEN_PLAIN)
    }

    saved = json.loads((tmp_path / "flows.json").read_text())
    assert len(saved["rows"]) == len(flows.MODELS) * len(dims)
    table = (tmp_path / "flows.md").read_text()
    for model in flows.MODELS:
        assert table.count(f"| {model} |") == len(dims)


def _distrax_params_from_jgen(jgen_params, dim: int, num_layers: int):
    """The distrax model's parameters that make it the same function as the jgen flow: jgen's
    weights placed at the conditioning (input) and transformed (output) coordinates, zeros
    elsewhere. Built with numpy (no compilations)."""
    jgen_params = jax.tree.map(np.asarray, jgen_params)
    out = {}
    for i in range(num_layers):
        layer = jgen_params["bijector"][f"bijectors_{i}"]
        net = layer["net"]
        conditioning = np.arange(i % 2, dim, 2)
        transformed = np.arange(1 - i % 2, dim, 2)
        n = len(transformed)
        first = np.zeros((dim, net["hidden_0"]["kernel"].shape[1]), np.float32)
        first[conditioning] = net["hidden_0"]["kernel"]
        kernel = np.zeros((net["out"]["kernel"].shape[0], 2 * dim), np.float32)
        bias = np.zeros(2 * dim, np.float32)
        # jgen's output is (raw log-scale, shift) for the transformed coordinates; the distrax
        # conditioner's is (shift, raw log-scale) for all D coordinates.
        kernel[:, transformed], bias[transformed] = (
            net["out"]["kernel"][:, n:],
            net["out"]["bias"][n:],
        )
        kernel[:, dim + transformed] = net["out"]["kernel"][:, :n]
        bias[dim + transformed] = net["out"]["bias"][:n]
        scale = np.ones(dim, np.float32)
        scale[transformed] = layer["scale"]
        out[f"conditioners_{i}"] = {
            "Dense_0": {"kernel": first, "bias": net["hidden_0"]["bias"]},
            "Dense_1": dict(net["hidden_1"]),
            "Dense_2": {"kernel": kernel, "bias": bias},
            "scale": scale,
        }
    return out


def test_distrax_peer_is_the_same_model_as_jgen():
    dim, num_layers = 5, 2
    cfg = flows.BenchConfig(num_layers=num_layers, hidden_dims=(8, 8))
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
    distrax_params = _distrax_params_from_jgen(params, dim, num_layers)
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
    objective = cnf_step._jgen_objective(cfg, joint=True)
    jgen_lp, _ = objective.log_prob(params, {}, jnp.asarray(x))
    hand_lp, _ = cnf_step._diffrax_log_prob(cfg, params["bijector"]["vector_field"], jnp.asarray(x))
    base = -0.5 * np.sum(x**2, axis=-1) - np.log(2 * np.pi)
    assert not np.allclose(jgen_lp, base, atol=1e-3)  # the flow is not the identity
    np.testing.assert_allclose(hand_lp, jgen_lp, rtol=1e-4, atol=1e-4)
