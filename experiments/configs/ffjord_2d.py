"""FFJORD (Grathwohl et al. 2019) on the 2-D toy densities.

One CNF with FFJORD's toy network (3 ConcatSquash layers of 64, tanh) on t ∈ [0, 1], Tsit5 with
rtol = atol = 1e-5, gradients by recursive checkpointing, Hutchinson's trace estimator with one
Rademacher probe in training; test NLL (nats) with the exact trace. Adam with cosine decay.
Launch: ``jgen train ffjord_2d:8gaussians`` (any name of ARGS after the colon); RNODE
regularisation: ``model.regularization.kinetic_energy=0.01``; one ODE for the whole batch
(FFJORD's joint solve, to compare on accelerators): ``model.solve_jointly=True``.
"""

from ml_collections import ConfigDict

from experiments.configs import common
from jgen.data import TOY_DATASETS

ARGS = tuple(TOY_DATASETS)


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    dataset = arg or "8gaussians"
    c = ConfigDict()
    c.name = f"ffjord_2d:{dataset}"
    c.family = "cnf"
    c.data = ConfigDict(dict(name=dataset, n_train=50_000, n_test=5_000, seed=0))
    c.model = ConfigDict(
        dict(
            field="concat_squash", hidden_dims=(64, 64, 64), activation="tanh", num_blocks=1,
            t1=1.0, solver="tsit5", rtol=1e-5, atol=1e-5, step_size=None, adjoint="recursive",
            trace="hutchinson", trace_distribution="rademacher", num_probes=1,
            solve_jointly=False, max_steps=4096,
            eval_rtol=1e-5, eval_atol=1e-5,
            regularization=ConfigDict(dict(kinetic_energy=0.0, jacobian_frobenius=0.0)),
        )
    )  # fmt: skip
    c.figures = ConfigDict(dict(resolution=200, num_samples=20_000))
    c.optim = ConfigDict(dict(learning_rate=1e-3, schedule="cosine", warmup_steps=100))
    c.train = ConfigDict(
        dict(
            steps=5_000, batch_size=256, seed=0, log_every=100, eval_every=1_000,
            eval_batch_size=5_000, checkpoint_every=500, progress=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(hidden_dims=(8,), rtol=1e-2, atol=1e-2, eval_rtol=1e-2, eval_atol=1e-2)
        c.figures.update(resolution=20, num_samples=200)
        common.smoke(c, batch_size=32, eval_batch_size=64, n_train=256, n_test=64)
    return c
