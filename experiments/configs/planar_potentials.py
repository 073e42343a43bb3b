"""Rezende & Mohamed's four 2-D energies U1-U4 (Table 1) fitted by reverse KL with planar flows.

q_0 = N(0, I), K planar layers (default 32; the README table uses K = 2, 8, 32), Adam with
cosine decay over 16k steps, 256 fresh base samples per step, β-annealing of the energy over the
first 8000 steps (R&M's β_t = min(1, 0.01 + t/8000); with 2000 steps K = 32 fits only one lobe
of U1). U2-U4 get a wall at |z1| = 4 to be normalisable (see `jgen.vi.potentials`).
Launch: ``jgen train planar_potentials:U1 model.num_flows=8`` (any of ARGS after the colon);
the whole table and the figure: ``python -m jgen.vi.study``.
The KL (nats, log Z by quadrature) per (U, K) is in the README; the test
tests/vi/test_vi_experiment.py asserts KL(K = 8) < KL(K = 2) on a short run.
"""

from ml_collections import ConfigDict

from experiments.configs import common

ARGS = ("U1", "U2", "U3", "U4")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    potential = arg or "U1"
    c = ConfigDict()
    c.name = f"planar_potentials:{potential}"
    c.family = "vi"
    # No data is fitted: the toy set's splits only set the number of Monte-Carlo samples (the
    # train batch size per step, the test split's size per evaluation).
    c.data = ConfigDict(dict(name="8gaussians", n_train=256, n_test=20_000, seed=0))
    c.model = ConfigDict(
        dict(
            potential=potential, flow="planar", num_flows=32, init_scale=0.1,
            anneal_steps=8000, quadrature_resolution=1400,
        )
    )  # fmt: skip
    c.figures = ConfigDict(dict(resolution=200))
    c.optim = ConfigDict(
        dict(learning_rate=3e-3, schedule="cosine", warmup_steps=0, clip_norm=100.0)
    )
    c.train = ConfigDict(
        dict(
            steps=16_000, batch_size=256, seed=0, log_every=1000, eval_every=0,
            eval_batch_size=5000, checkpoint_every=0, progress=True, data_parallel=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(num_flows=2, quadrature_resolution=100, anneal_steps=2)
        c.figures.update(resolution=40)
        common.smoke(c, batch_size=16, eval_batch_size=32, n_train=16, n_test=32)
    return c
