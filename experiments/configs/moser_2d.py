"""Moser flow (Rozen et al. 2021) on 2-D toys in the box [-5, 5]^2 with a uniform prior.

μ = ν − div u with u = (1 − (x/L)²) ⊙ MLP(x/L) (3x64, tanh), normalised by construction;
loss −mean log max(μ, ε) on data + λ · ∫ relu(ε − μ) (Monte Carlo with uniform samples),
ε = 1e-5. The test NLL is −log max(μ, ε), no ODE; samples integrate u / ((1−t)ν + tμ) from
uniform draws (t = 0) to t = 1. Launch: ``jgen train moser_2d:checkerboard``.
"""

from ml_collections import ConfigDict

from experiments.configs import common

ARGS = ("8gaussians", "checkerboard")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    dataset = arg or "8gaussians"
    c = ConfigDict()
    c.name = f"moser_2d:{dataset}"
    c.family = "moser_flow"
    c.data = ConfigDict(dict(name=dataset, n_train=50_000, n_test=10_000, seed=0))
    c.model = ConfigDict(
        dict(
            hidden_dims=(64, 64, 64), activation="tanh", half_width=5.0, eps=1e-5,
            penalty=1.0, output_scale=None, rtol=1e-5, atol=1e-5,
        )
    )  # fmt: skip
    c.optim = ConfigDict(dict(learning_rate=2e-3, schedule="cosine", warmup_steps=100))
    c.train = ConfigDict(
        dict(
            steps=5000, batch_size=512, seed=0, log_every=250, eval_every=2500,
            eval_batch_size=5000, checkpoint_every=2500, progress=True,
        )
    )  # fmt: skip
    c.figures = ConfigDict(dict(resolution=200, num_samples=20_000))
    if smoke:
        c.model.update(hidden_dims=(8,), rtol=1e-3, atol=1e-3)
        common.smoke(c, batch_size=32, eval_batch_size=64, n_train=256, n_test=64)
        c.figures.update(resolution=16, num_samples=256)
    return c
