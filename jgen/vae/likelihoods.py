"""Observation models p(x|z) for latent-variable models, and binarisation of image data.

A likelihood turns the decoder's output, ``params`` of shape ``(..., *event_shape, num_params)``,
into log p(x|z) summed over the event axes. Each one also says how raw data (as stored in a
`jgen.data.Dataset`) becomes its *target* (what log p(x|z) is evaluated on) and how a target is
fed to an encoder:

``Bernoulli``   binary pixels; logits, log p = Σ [t·l − softplus(l)]. Data with ``num_levels`` K
                is binarised: 'dynamic' draws t ~ Bernoulli(x/(K−1)) afresh at every training
                step (Salakhutdinov & Murray 2008, Burda et al. 2016) and, for evaluation, once
                per image with a key hashed from its pixels (`fixed_binarize`): the same test
                image always gets the same binary draw, whatever batch it is in, so every model
                is scored on the same binary test set. 'threshold' sets t = [x/(K−1) ≥ 0.5].
                Data without levels (``num_levels=None``) must hold 0 and 1 only.
``Categorical`` the K levels as K classes per pixel: log p = Σ log softmax(l)[x]. Exact for
                17-level digits; encoder input x/(K−1).
``Gaussian``    N(x; μ, σ²) per dimension, σ = softplus(s) + ``min_scale``. Level data is
                dequantised, y = (x + u)/K, and log p counts the −D log K of that change of
                variables, so it lower-bounds the discrete log-likelihood in expectation (the
                convention of `jgen.distributions.bits_per_dim`).

Values outside a likelihood's support (non-binary data for Bernoulli, levels out of range or
non-integer) raise `jgen.validation.ValidationError` from `check_support` (concrete arrays only:
under ``jit`` nothing is checked and nothing is paid).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jgen.distributions.dequantization import uniform_dequantize
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, check_int, check_levels, is_concrete

__all__ = [
    "BINARIZATIONS",
    "LIKELIHOODS",
    "Bernoulli",
    "Categorical",
    "Gaussian",
    "Likelihood",
    "check_levels",
    "dynamic_binarize",
    "fixed_binarize",
    "make_likelihood",
]


def _sum_event(x: Array, event_ndims: int) -> Array:
    return jnp.sum(x, axis=tuple(range(x.ndim - event_ndims, x.ndim))) if event_ndims else x


def dynamic_binarize(key: PRNGKey, x: Array, num_levels: int, dtype=None) -> Array:
    """t ~ Bernoulli(x/(K−1)) elementwise, as 0.0/1.0 of ``dtype`` (default float type).

    E[t] = x/(K−1): the grey level is the probability of a set pixel. Levels 0 and K−1 give 0
    and 1 with certainty.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    p = x.astype(dtype) / (num_levels - 1)
    return (jax.random.uniform(key, x.shape, dtype) < p).astype(dtype)


def fixed_binarize(x: Array, num_levels: int, seed: int = 0, dtype=None) -> Array:
    """t ~ Bernoulli(x/(K−1)) for a batch ``x`` (B, ...), with example b's draw keyed by a hash of
    its pixels: fold_in(PRNGKey(seed), Σ_i c_i x_bi mod 2³²) with fixed odd multipliers c_i.

    A function of (image, seed) only: the same image is binarised the same way in any batch and
    any run; distinct images get independent draws (unless their hashes collide).
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    base = jax.random.PRNGKey(seed)
    flat = x.reshape(x.shape[0], -1).astype(jnp.uint32)
    multipliers = jax.random.bits(base, (flat.shape[1],), jnp.uint32) | jnp.uint32(1)
    hashes = jnp.sum(flat * multipliers, axis=1, dtype=jnp.uint32)  # wraps modulo 2**32
    u = jax.vmap(lambda h: jax.random.uniform(jax.random.fold_in(base, h), x.shape[1:], dtype))(
        hashes
    )
    return (u < x.astype(dtype) / (num_levels - 1)).astype(dtype)


class Likelihood(Protocol):
    """What a latent-variable objective needs from an observation model."""

    num_levels: int | None

    @property
    def num_params(self) -> int: ...  # decoder outputs per data dimension

    def check_support(self, x, name: str) -> None: ...

    def target(self, key: PRNGKey, x: Array, *, train: bool) -> Array: ...  # data -> log p's input

    def encoder_input(self, target: Array) -> Array: ...  # target -> encoder input (float)

    def log_prob(self, params: Array, target: Array, event_ndims: int) -> Array: ...

    def mean(self, params: Array) -> Array: ...  # E[x|z] as an image in [0, 1] (figures)

    def sample(self, key: PRNGKey, params: Array) -> Array: ...  # a target

    def to_data(self, target: Array) -> Array: ...  # a target in the data's units


BINARIZATIONS = ("dynamic", "threshold")


@dataclasses.dataclass(frozen=True)
class Bernoulli:
    """Bernoulli pixels with logits l: log p(t|z) = Σ_i t_i l_i − softplus(l_i).

    Level data (``num_levels`` K) is binarised (module docstring): ``binarization`` 'dynamic'
    (training: a new draw per step; evaluation: `fixed_binarize` with ``eval_seed``) or
    'threshold' (t = [x/(K−1) ≥ ``threshold``]).
    """

    num_levels: int | None = None
    binarization: str = "dynamic"
    threshold: float = 0.5
    eval_seed: int = 0

    num_params = 1

    def __post_init__(self):
        if self.binarization not in BINARIZATIONS:
            raise ValueError(
                f"Bernoulli: binarization must be one of {BINARIZATIONS}, got {self.binarization!r}"
            )

    def check_support(self, x, name: str) -> None:
        if self.num_levels is not None:
            check_levels(x, name, self.num_levels)
        elif is_concrete(x):
            values = np.asarray(x)
            bad = values[(values != 0) & (values != 1)]
            if bad.size:
                raise ValidationError(
                    f"{name}: expected binary values 0 or 1 for a Bernoulli likelihood, got "
                    f"{bad.size} other value(s), e.g. {bad.flat[0]} (grey-level data: give the "
                    "dataset's num_levels so that it is binarised)"
                )

    def target(self, key, x, *, train: bool):
        dtype = jnp.result_type(float)
        if self.num_levels is None:
            return x.astype(dtype)
        if self.binarization == "threshold":
            return (x.astype(dtype) / (self.num_levels - 1) >= self.threshold).astype(dtype)
        if train:
            return dynamic_binarize(key, x, self.num_levels)
        return fixed_binarize(x, self.num_levels, self.eval_seed)

    def encoder_input(self, target):
        return target

    def log_prob(self, params, target, event_ndims):
        logits = params[..., 0]
        return _sum_event(target * logits - jax.nn.softplus(logits), event_ndims)

    def mean(self, params):
        return jax.nn.sigmoid(params[..., 0])

    def sample(self, key, params):
        p = self.mean(params)
        return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)

    def to_data(self, target):
        """Binary draws, as levels {0, K−1} for level data."""
        return target if self.num_levels is None else target * (self.num_levels - 1)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """Each pixel one of K classes: log p(x|z) = Σ_i log softmax(l_i)[x_i]."""

    num_levels: int

    def __post_init__(self):
        check_int(self.num_levels, "num_levels", minimum=2, owner="Categorical")

    @property
    def num_params(self) -> int:
        return self.num_levels

    def check_support(self, x, name: str) -> None:
        check_levels(x, name, self.num_levels)

    def target(self, key, x, *, train: bool):
        del key, train
        return x.astype(jnp.int32)

    def encoder_input(self, target):
        return target.astype(jnp.result_type(float)) / (self.num_levels - 1)

    def log_prob(self, params, target, event_ndims):
        log_p = jax.nn.log_softmax(params, axis=-1)
        target = jnp.broadcast_to(target, log_p.shape[:-1])
        picked = jnp.take_along_axis(log_p, target[..., None], axis=-1)[..., 0]
        return _sum_event(picked, event_ndims)

    def mean(self, params):
        levels = jnp.arange(self.num_levels, dtype=params.dtype)
        return jax.nn.softmax(params, axis=-1) @ levels / (self.num_levels - 1)

    def sample(self, key, params):
        return jax.random.categorical(key, params, axis=-1)

    def to_data(self, target):
        return target


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """N(x; μ, σ²) per dimension, σ = softplus(s) + min_scale; level data is dequantised first.

    With ``num_levels`` K the target is y = (x + u)/K ∈ [0, 1) and
    log p(x|z) = Σ_i log N(y_i; μ_i, σ_i²) − D log K (a bound on the discrete likelihood).
    """

    num_levels: int | None = None
    min_scale: float = 1e-3

    num_params = 2

    def check_support(self, x, name: str) -> None:
        if self.num_levels is not None:
            check_levels(x, name, self.num_levels)

    def target(self, key, x, *, train: bool):
        del train
        if self.num_levels is None:
            return x.astype(jnp.result_type(float))
        return uniform_dequantize(key, x, self.num_levels)

    def encoder_input(self, target):
        return target

    def _loc_scale(self, params):
        return params[..., 0], jax.nn.softplus(params[..., 1]) + self.min_scale

    def log_prob(self, params, target, event_ndims):
        loc, scale = self._loc_scale(params)
        z = (target - loc) / scale
        log_p = -0.5 * z**2 - jnp.log(scale) - 0.5 * math.log(2 * math.pi)
        total = _sum_event(log_p, event_ndims)
        if self.num_levels is not None:
            dims = math.prod(target.shape[target.ndim - event_ndims :])
            total = total - dims * math.log(self.num_levels)
        return total

    def mean(self, params):
        return jnp.clip(params[..., 0], 0.0, 1.0)

    def sample(self, key, params):
        loc, scale = self._loc_scale(params)
        return loc + scale * jax.random.normal(key, loc.shape, loc.dtype)

    def to_data(self, target):
        if self.num_levels is None:
            return target
        return jnp.clip(jnp.floor(target * self.num_levels), 0, self.num_levels - 1)


LIKELIHOODS = {"bernoulli": Bernoulli, "categorical": Categorical, "gaussian": Gaussian}


def make_likelihood(name: str, num_levels: int | None, **options) -> Likelihood:
    """The likelihood called ``name`` for data with ``num_levels`` levels (None: continuous);
    ``options`` are its other fields (e.g. Bernoulli's ``binarization``)."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; expected one of {sorted(LIKELIHOODS)}")
    if name == "categorical" and num_levels is None:
        raise ValueError(
            "the categorical likelihood needs discrete data (a dataset with num_levels), got "
            "continuous data"
        )
    return LIKELIHOODS[name](num_levels=num_levels, **options)
