"""FFJORD on the 8x8 digits (17 levels, dequantised; bits/dim comparable with RealNVP's).

The 64 pixels, in logit space (`LogitPreprocess`), flow through one CNF whose field is a
ConcatSquash MLP on the flattened image (2 layers of 256, softplus: on 8x8 images a dense field
is cheaper than FFJORD's convolutional one). Tsit5, rtol = atol = 1e-4 in training, Hutchinson
(one Rademacher probe); test bits/dim with the exact trace at 1e-5.
Launch: ``jgen train ffjord_digits``.
"""

from ml_collections import ConfigDict

from experiments.configs import common


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = ConfigDict()
    c.name = "ffjord_digits"
    c.family = "cnf"
    c.data = ConfigDict(dict(name="digits"))
    c.model = ConfigDict(
        dict(
            field="concat_squash", hidden_dims=(256, 256), activation="softplus", num_blocks=1,
            t1=1.0, solver="tsit5", rtol=1e-4, atol=1e-4, step_size=None, adjoint="recursive",
            trace="hutchinson", trace_distribution="rademacher", num_probes=1,
            solve_jointly=False, max_steps=4096,
            eval_rtol=1e-5, eval_atol=1e-5, logit_alpha=0.05,
            regularization=ConfigDict(dict(kinetic_energy=0.0, jacobian_frobenius=0.0)),
        )
    )  # fmt: skip
    c.optim = ConfigDict(dict(learning_rate=1e-3, schedule="cosine", warmup_steps=100))
    c.train = ConfigDict(
        dict(
            steps=3_000, batch_size=64, seed=0, log_every=100, eval_every=1_000,
            eval_batch_size=300, checkpoint_every=500, progress=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(hidden_dims=(8,), rtol=1e-2, atol=1e-2, eval_rtol=1e-2, eval_atol=1e-2)
        common.smoke(c, batch_size=16, eval_batch_size=64)
    return c
