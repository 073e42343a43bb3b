"""Sequence to sequence: an LSTM encoder-decoder with exact likelihood (eq. 1.9) and decoding.

`Seq2Seq` (the Flax model, ``log_prob(source, target)``), `Seq2SeqObjective` (teacher-forced
maximum likelihood for the shared trainer), decoders `greedy_decode`, `sample_decode`,
`beam_search` (length-normalised), and `decode_inputs` for user-given texts (``jgen sample``).
"""

from jgen.seq2seq.decoding import (
    DECODERS,
    Decoded,
    beam_search,
    decode,
    decode_inputs,
    greedy_decode,
    normalized_score,
    outputs,
    sample_decode,
)
from jgen.seq2seq.model import Seq2Seq, check_tokens, sequence_lengths
from jgen.seq2seq.objective import Seq2SeqObjective

__all__ = [
    "DECODERS",
    "Decoded",
    "Seq2Seq",
    "Seq2SeqObjective",
    "beam_search",
    "check_tokens",
    "decode",
    "decode_inputs",
    "greedy_decode",
    "normalized_score",
    "outputs",
    "sample_decode",
    "sequence_lengths",
]
