"""Conditional flow matching (Lipman et al. 2023) on 2-D toys, independent coupling.

The CNF's field is FFJORD's ConcatSquash MLP (3x64, tanh), trained simulation-free on the
linear Gaussian path (σ_min = 1e-4); the test NLL is the exact log-likelihood of the same
model through the CNF's density solve (exact trace, Tsit5, rtol = atol = 1e-5).
Launch: ``jgen train flow_matching_2d:8gaussians`` (or another name of ARGS).
Numbers: README (flow matching section); benchmarks/simulation_free.py compares with FFJORD.
"""

from ml_collections import ConfigDict

from experiments.configs import common

ARGS = ("8gaussians", "checkerboard", "moons")


def get_config(arg: str | None = None, smoke: bool = False, coupling: str = "independent"):
    dataset = arg or "8gaussians"
    c = ConfigDict()
    suffix = "" if coupling == "independent" else f"_{coupling}"
    c.name = f"flow_matching{suffix}_2d:{dataset}"
    c.family = "flow_matching"
    c.data = ConfigDict(dict(name=dataset, n_train=50_000, n_test=10_000, seed=0))
    c.model = ConfigDict(
        dict(
            field="concat_squash", hidden_dims=(64, 64, 64), activation="tanh", path="linear",
            sigma=1e-4, coupling=coupling, rtol=1e-5, atol=1e-5, trace="exact",
        )
    )  # fmt: skip
    c.optim = ConfigDict(dict(learning_rate=2e-3, schedule="cosine", warmup_steps=100))
    c.train = ConfigDict(
        dict(
            steps=5000, batch_size=512, seed=0, log_every=250, eval_every=2500,
            eval_batch_size=2000, checkpoint_every=2500, progress=True,
        )
    )  # fmt: skip
    c.figures = ConfigDict(dict(resolution=200, num_samples=20_000))
    if smoke:
        c.model.update(hidden_dims=(8,), rtol=1e-3, atol=1e-3)
        common.smoke(c, batch_size=32, eval_batch_size=64, n_train=256, n_test=64)
        c.figures.update(resolution=16, num_samples=256)
    return c
