"""Flow matching with a U-Net field on MNIST-5k (28x28, 256 levels), exact bits/dim.

Dequantised, logit space (α = 0.05, as every jgen flow), linear Gaussian path (σ_min = 1e-4);
the variant after the colon is the coupling: ``independent`` (default) or ``ot`` (exact
mini-batch OT of `jgen.flow_matching`). Field: `jgen.cnf.UNetField` (widths 32, 64, 64: 28 →
14 → 7; attention at 7x7). Test bits/dim is the exact log-likelihood of the CNF (exact trace,
Tsit5, rtol = atol = 1e-5: slow on a CPU). Launch: ``jgen train fm_mnist5k:ot``.
"""

from jgen.config import shared_config_module

shared = shared_config_module("_mnist5k")
ARGS = ("independent", "ot")


def get_config(arg: str | None = None, smoke: bool = False):
    coupling = arg or "independent"
    c = shared.ConfigDict()
    c.name, c.family, c.data = f"fm_mnist5k:{coupling}", "flow_matching", shared.data(smoke)
    c.model = shared.ConfigDict(
        dict(
            field="unet", hidden_dims=(32, 64, 64), activation="silu",
            field_options=shared.ConfigDict(dict(attention=True, num_res_blocks=1)),
            path="linear", sigma=1e-4, coupling=coupling, rtol=1e-5, atol=1e-5, trace="exact",
            logit_alpha=0.05,
        )
    )  # fmt: skip
    c.optim = shared.optim(smoke, learning_rate=2e-4, optimizer="adamw", weight_decay=1e-4)
    c.train = shared.train(steps=20_000, batch_size=128, eval_every=0, smoke=smoke)
    c.figures = shared.ConfigDict(dict(resolution=0, num_samples=50))
    if smoke:
        # Hutchinson's trace in the smoke run's evaluation: the exact one costs 784 JVPs.
        c.model.update(hidden_dims=(4,), rtol=1e-2, atol=1e-2, trace="hutchinson")
        c.model.field_options.attention = False
        c.figures.num_samples = 4
    return c
