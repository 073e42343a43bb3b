"""The ``seq2seq`` family: config -> `Seq2SeqObjective`, figures, sampling and `decode_inputs`.

``config.model``: ``embed_dim``, ``hidden_dim``, ``num_layers``, ``reverse_source`` (see
`Seq2Seq`). The model's maximum source length is the width of the data arrays and its maximum
target length the longest target in the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jgen import plotting
from jgen.data import Dataset
from jgen.plotting import plt
from jgen.seq2seq.decoding import (
    DECODERS,
    decode,
    decode_inputs,
    greedy_decode,
    outputs,
    sample_decode,
)
from jgen.seq2seq.model import Seq2Seq, sequence_lengths
from jgen.seq2seq.objective import Seq2SeqObjective
from jgen.train import TrainState

__all__ = ["DECODERS", "build_seq2seq_experiment", "decode", "decode_inputs", "seq2seq_model"]


def seq2seq_model(model: ConfigDict, dataset: Dataset) -> Seq2Seq:
    if dataset.vocabulary is None:
        raise ValueError(
            f"the seq2seq family needs a token data set (reversal, sorting, addition, dates), "
            f"got {dataset.name!r}"
        )
    targets = np.concatenate([dataset.train[:, 1], dataset.test[:, 1]])
    return Seq2Seq(
        vocab_size=dataset.vocabulary.size,
        max_source_length=dataset.train.shape[-1],
        max_target_length=int(np.asarray(sequence_lengths(jnp.asarray(targets))).max()),
        embed_dim=model.get("embed_dim", 64),
        hidden_dim=model.get("hidden_dim", 256),
        num_layers=model.get("num_layers", 2),
        reverse_source=bool(model.get("reverse_source", False)),
    )


def _text_table(path: Path, rows: list[tuple[str, str, str]], title: str) -> Path:
    """A figure listing source -> greedy output, green when it equals the target, red if not."""
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 0.8))
    ax.axis("off")
    for i, (source, target, output) in enumerate(rows):
        y = 1 - (i + 0.5) / len(rows)
        color = "tab:green" if output == target else "tab:red"
        ax.text(0.0, y, source, family="monospace", va="center", fontsize=9)
        ax.text(0.5, y, "-> " + output, family="monospace", va="center", color=color, fontsize=9)
    ax.set_title(title, fontsize=10)
    return plotting.save_figure(fig, path)


def build_seq2seq_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    model = seq2seq_model(config.model, dataset)
    objective = Seq2SeqObjective(model)
    vocabulary = dataset.vocabulary
    name = config.get("name", "seq2seq")

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        pairs = dataset.test[:16]
        sources = jnp.asarray(pairs[:, 0])
        decoded = np.asarray(outputs(greedy_decode(model, state.eval_params, sources)))
        rows = [
            (vocabulary.decode(p[0]), vocabulary.decode(p[1]), vocabulary.decode(d))
            for p, d in zip(pairs, decoded, strict=True)
        ]
        correct = sum(r[1] == r[2] for r in rows)
        title = f"{name}: greedy decoding of test inputs ({correct}/{len(rows)} exact)"
        return [_text_table(workdir / "samples.png", rows, title)]

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        """``(num, 2)`` strings: test sources and an output sampled from p(y | x) for each."""
        index = np.arange(num) % len(dataset.test)
        source = dataset.test[index, 0]
        decoded = sample_decode(model, state.eval_params, jnp.asarray(source), key)
        texts = [vocabulary.decode(s) for s in source]
        samples = [vocabulary.decode(t) for t in np.asarray(outputs(decoded))]
        return np.array([texts, samples]).T

    return dict(objective=objective, figures=figures, sample=sample)
