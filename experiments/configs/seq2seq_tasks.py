"""LSTM encoder-decoder (Sutskever et al. 2014) on the generated sequence tasks.

Launch: ``jgen train seq2seq_tasks:reversal`` (any name of ARGS after the colon); then
``jgen eval --workdir runs/seq2seq_tasks_reversal`` and decode your own inputs with
``jgen sample --workdir runs/seq2seq_tasks_dates --input "3 March 1999" --decode beam``.
Held-out exact-match accuracy of greedy decoding (1000 test inputs never seen in training) is in
the README's results table.
"""

from ml_collections import ConfigDict

from experiments.configs import common

ARGS = ("reversal", "sorting", "addition", "dates")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    task = arg or "reversal"
    if task not in ARGS:
        raise ValueError(f"unknown task {task!r}; expected one of {ARGS}")
    c = ConfigDict()
    c.name = f"seq2seq_tasks:{task}"
    c.family = "seq2seq"
    c.data = ConfigDict(dict(name=task, n_train=200_000, n_test=1000, seed=0))
    c.model = ConfigDict(dict(embed_dim=64, hidden_dim=256, num_layers=2, reverse_source=False))
    c.optim = ConfigDict(
        dict(learning_rate=2e-3, schedule="cosine", warmup_steps=200, clip_norm=1.0)
    )
    c.train = ConfigDict(
        dict(
            steps=6000, batch_size=256, seed=0, log_every=500, eval_every=1000,
            eval_batch_size=1000, checkpoint_every=1000, progress=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(embed_dim=8, hidden_dim=8, num_layers=1)
        common.smoke(c, batch_size=16, eval_batch_size=16, n_train=64, n_test=16)
    return c
