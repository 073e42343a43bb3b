"""Sequence-to-sequence tasks generated on the fly from a seed (nothing is downloaded).

Tasks (``SEQUENCE_TASKS``), each a map from a source string to a target string:

* ``reversal``: random lower-case words, ``"abcd" -> "dcba"``.
* ``sorting``: random digit strings, ``"3141" -> "1134"``.
* ``addition``: two non-negative integers, ``"123+4567" -> "4690"``.
* ``dates``: a date between 1900-01-01 and 2099-12-31 written in one of five formats (e.g.
  ``"3 March 1999"``, ``"March 3, 1999"``, ``"3 Mar 1999"``, ``"03/03/1999"``,
  ``"Wednesday 3 March 1999"``; names from Python's ``datetime``) -> ISO ``"1999-03-03"``.

Each task has a character `Vocabulary`: the ids ``PAD = 0``, ``BOS = 1``, ``EOS = 2`` and then one
id per character of the task's alphabet. A split is an int32 array ``x`` of shape ``(N, 2, L)``:
``x[:, 0]`` the source and ``x[:, 1]`` the target, character ids padded on the right with
``PAD`` (no ``BOS``/``EOS``: the model adds them). ``L`` is the task's maximum length over
sources and targets, fixed by its settings, so every split and every seed has the same shape.

Splits: the test split has ``n_test`` distinct sources; the train split has ``n_train`` examples
(repeats allowed) none of whose sources is in the test split, so test accuracy measures
generalisation to unseen inputs. Both come from ``numpy.random.default_rng([seed, task id])``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# jgen.validation imports JAX, which host-side data code does not need until it raises or checks
# (importing jgen.data, as `jgen list` does through the configs, stays light): imported in the
# functions that use it.

__all__ = [
    "BOS",
    "EOS",
    "NUM_SPECIAL_TOKENS",
    "PAD",
    "SEQUENCE_TASKS",
    "SequenceTask",
    "Vocabulary",
    "make_sequence_splits",
    "sequence_task",
]

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL_TOKENS = 3


@dataclass(frozen=True)
class Vocabulary:
    """Characters as ids: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``, then ``alphabet[i] -> i + 3``."""

    alphabet: str

    def __post_init__(self):
        if not isinstance(self.alphabet, str) or not self.alphabet:
            raise ValueError(f"alphabet must be a non-empty str, got {self.alphabet!r}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet has repeated characters: {self.alphabet!r}")

    @property
    def size(self) -> int:
        """Number of ids, the special tokens included."""
        return NUM_SPECIAL_TOKENS + len(self.alphabet)

    def encode(self, text: str, *, length: int | None = None) -> np.ndarray:
        """The ids of ``text`` (int32), padded with ``PAD`` to ``length`` if given.

        Raises `jgen.validation.ValidationError` for characters outside the alphabet or a text
        longer than ``length``.
        """
        from jgen.validation import ValidationError

        if not isinstance(text, str):
            raise ValidationError(f"text: expected a str, got {type(text).__name__}")
        index = {c: i + NUM_SPECIAL_TOKENS for i, c in enumerate(self.alphabet)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValidationError(
                f"text {text!r}: expected characters of the vocabulary {self.alphabet!r}, got "
                f"{''.join(unknown)!r}"
            )
        if length is not None and len(text) > length:
            raise ValidationError(
                f"text {text!r}: expected at most {length} characters (the model's maximum), got "
                f"{len(text)}"
            )
        ids = np.full(len(text) if length is None else length, PAD, np.int32)
        ids[: len(text)] = [index[c] for c in text]
        return ids

    def encode_batch(self, texts: Sequence[str], length: int) -> np.ndarray:
        """``(len(texts), length)`` int32 ids, each text padded with ``PAD``."""
        return np.stack([self.encode(t, length=length) for t in texts]).reshape(len(texts), length)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: stops at the first ``EOS`` or ``PAD``, skips ``BOS``."""
        from jgen.validation import ValidationError

        chars = []
        for i in np.asarray(ids).tolist():
            if i in (PAD, EOS):
                break
            if i == BOS:
                continue
            if not 0 <= i < self.size:
                raise ValidationError(f"ids: expected ids in 0..{self.size - 1}, got {i}")
            chars.append(self.alphabet[i - NUM_SPECIAL_TOKENS])
        return "".join(chars)


Example = tuple[str, str]


@dataclass(frozen=True)
class SequenceTask:
    """A task: its alphabet, the maximum source/target lengths and a sampler of examples."""

    name: str
    alphabet: str
    max_source_length: int
    max_target_length: int
    sample: Callable[[np.random.Generator], Example]

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.alphabet)

    @property
    def length(self) -> int:
        """``L``, the padded length of sources and targets in the arrays."""
        return max(self.max_source_length, self.max_target_length)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"


def _check_lengths(min_length: int, max_length: int) -> tuple[int, int]:
    from jgen.validation import check_int

    min_length = check_int(min_length, "min_length", minimum=1)
    max_length = check_int(max_length, "max_length", minimum=1)
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must be <= max_length ({max_length})")
    return min_length, max_length


def _random_string(rng: np.random.Generator, alphabet: str, lo: int, hi: int) -> str:
    n = int(rng.integers(lo, hi + 1))
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def reversal_task(*, min_length: int = 1, max_length: int = 10) -> SequenceTask:
    lo, hi = _check_lengths(min_length, max_length)

    def sample(rng):
        s = _random_string(rng, _LETTERS, lo, hi)
        return s, s[::-1]

    return SequenceTask("reversal", _LETTERS, hi, hi, sample)


def sorting_task(*, min_length: int = 1, max_length: int = 10) -> SequenceTask:
    lo, hi = _check_lengths(min_length, max_length)

    def sample(rng):
        s = _random_string(rng, _DIGITS, lo, hi)
        return s, "".join(sorted(s))

    return SequenceTask("sorting", _DIGITS, hi, hi, sample)


def addition_task(*, min_length: int = 1, max_length: int = 3) -> SequenceTask:
    """``a+b -> a + b`` with operands of ``min_length..max_length`` digits (no leading zeros)."""
    lo, hi = _check_lengths(min_length, max_length)

    def operand(rng):
        digits = int(rng.integers(lo, hi + 1))
        low = 0 if digits == 1 else 10 ** (digits - 1)
        return int(rng.integers(low, 10**digits))

    def sample(rng):
        a, b = operand(rng), operand(rng)
        return f"{a}+{b}", str(a + b)

    return SequenceTask("addition", _DIGITS + "+", 2 * hi + 1, hi + 1, sample)


_FIRST_DAY = datetime.date(1900, 1, 1)
_NUM_DAYS = (datetime.date(2099, 12, 31) - _FIRST_DAY).days + 1
DATE_FORMATS: tuple[Callable[[datetime.date], str], ...] = (
    lambda d: f"{d.day} {d:%B} {d.year}",  # 3 March 1999
    lambda d: f"{d:%B} {d.day}, {d.year}",  # March 3, 1999
    lambda d: f"{d.day} {d:%b} {d.year}",  # 3 Mar 1999
    lambda d: f"{d:%d/%m/%Y}",  # 03/03/1999
    lambda d: f"{d:%A} {d.day} {d:%B} {d.year}",  # Wednesday 3 March 1999
)


def _all_date_sources() -> list[str]:
    """Every formatting of every day of the leap year 2000 (years are always 4 digits)."""
    days = [_FIRST_DAY.replace(year=2000) + datetime.timedelta(days=i) for i in range(366)]
    return [style(d) for d in days for style in DATE_FORMATS]


def dates_task() -> SequenceTask:
    """Dates in one of `DATE_FORMATS` -> ``YYYY-MM-DD`` (English names, from ``datetime``)."""
    sources = _all_date_sources()
    alphabet = "".join(sorted(set("".join(sources)) | set(_DIGITS + "-")))

    def sample(rng):
        date = _FIRST_DAY + datetime.timedelta(days=int(rng.integers(_NUM_DAYS)))
        style = DATE_FORMATS[int(rng.integers(len(DATE_FORMATS)))]
        return style(date), date.isoformat()

    return SequenceTask("dates", alphabet, max(map(len, sources)), 10, sample)


_TASKS: dict[str, Callable[..., SequenceTask]] = {
    "reversal": reversal_task,
    "sorting": sorting_task,
    "addition": addition_task,
    "dates": dates_task,
}
SEQUENCE_TASKS: tuple[str, ...] = tuple(_TASKS)


def sequence_task(name: str, **options) -> SequenceTask:
    """The task ``name`` (one of `SEQUENCE_TASKS`) with its options (lengths)."""
    if name not in _TASKS:
        raise ValueError(f"unknown sequence task {name!r}; known: {', '.join(SEQUENCE_TASKS)}")
    return _TASKS[name](**options)


def _encode(task: SequenceTask, examples: list[Example]) -> np.ndarray:
    vocab = task.vocabulary
    x = np.zeros((len(examples), 2, task.length), np.int32)
    for i, (source, target) in enumerate(examples):
        x[i, 0] = vocab.encode(source, length=task.length)
        x[i, 1] = vocab.encode(target, length=task.length)
    return x


def _draw(
    task: SequenceTask,
    rng: np.random.Generator,
    count: int,
    add: Callable[[Example], bool],
    failure: str,
) -> None:
    """Sample until ``add(example)`` has accepted ``count`` examples; a bounded number of tries."""
    accepted = 0
    for _ in range(20 * count + 1000):
        if accepted == count:
            return
        accepted += add(task.sample(rng))
    if accepted < count:
        raise ValueError(
            f"{task.name}: {failure} ({accepted} of {count}); ask for fewer test examples or "
            "allow longer sequences"
        )


def make_sequence_splits(
    task: SequenceTask, *, n_train: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` arrays ``(N, 2, L)``: distinct test sources, none of them in train.

    Raises ``ValueError`` when the task has too few distinct sources for ``n_test`` (e.g. very
    short sequences), rather than looping for ever.
    """
    from jgen.validation import check_int

    n_train = check_int(n_train, "n_train", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=1)
    rng = np.random.default_rng([seed, SEQUENCE_TASKS.index(task.name)])
    test: dict[str, str] = {}
    train: list[Example] = []

    def add_test(example: Example) -> bool:
        return example[0] not in test and test.setdefault(*example) is not None

    def add_train(example: Example) -> bool:
        return example[0] not in test and train.append(example) is None

    _draw(task, rng, n_test, add_test, f"could not draw {n_test} distinct test sources")
    _draw(task, rng, n_train, add_train, "the test split holds nearly every source")
    return _encode(task, train), _encode(task, list(test.items()))
