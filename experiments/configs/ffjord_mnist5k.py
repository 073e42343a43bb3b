"""FFJORD's multi-scale CNF (Grathwohl et al. 2019) on MNIST-5k (28x28, 256 levels), bits/dim.

Logit space (α = 0.05), two scales (28x28x1; squeeze to 14x14x4; factor out half; 14x14x2),
two CNF blocks per stage (`jgen.cnf.multiscale_cnf`), each with a time-conditioned U-Net field
(`jgen.cnf.UNetField`: widths 32, 64; attention at 7x7). Training: Dopri5 at rtol = atol =
1e-5 with Hutchinson's estimator (one Rademacher probe); test bits/dim with the exact trace
(784 JVPs per field evaluation: slow on a CPU). Launch: ``jgen train ffjord_mnist5k``.
Published full-MNIST context: FFJORD 0.99, RNODE 0.97 bits/dim.
"""

from jgen.config import shared_config_module

shared = shared_config_module("_mnist5k")


def get_config(arg: str | None = None, smoke: bool = False):
    c = shared.ConfigDict()
    c.name, c.family, c.data = "ffjord_mnist5k", "cnf", shared.data(smoke)
    c.model = shared.ConfigDict(
        dict(
            field="unet", hidden_dims=(32, 64), activation="silu",
            field_options=shared.ConfigDict(dict(attention=True, num_res_blocks=1)),
            num_scales=2, num_blocks=2, t1=1.0, solver="dopri5", rtol=1e-5, atol=1e-5,
            step_size=None, adjoint="recursive", trace="hutchinson",
            trace_distribution="rademacher", num_probes=1, solve_jointly=False, max_steps=4096,
            eval_rtol=1e-5, eval_atol=1e-5, eval_trace="exact", logit_alpha=0.05,
            regularization=shared.ConfigDict(dict(kinetic_energy=0.0, jacobian_frobenius=0.0)),
        )
    )  # fmt: skip
    c.optim = shared.optim(smoke, learning_rate=1e-3)
    c.train = shared.train(steps=20_000, batch_size=64, eval_every=5000, smoke=smoke)
    if smoke:
        # One Euler step per CNF and Hutchinson's trace in evaluation (the exact one costs 784
        # JVPs): the smoke run checks the plumbing, not the solve.
        c.model.update(hidden_dims=(4,), num_blocks=1, solver="euler", step_size=1.0,
                       eval_trace="hutchinson")  # fmt: skip
        c.model.field_options.attention = False
    return c
