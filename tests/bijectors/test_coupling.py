"""Unit tests for AffineCoupling, Squeeze, FactorOut and the RealNVP builders.

Round trips, log-dets against autodiff Jacobians, float64, jit/vmap and distrax interop are
covered by the registry cases in `cases_coupling.py`; here we test what those cannot see.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.nets import MLP, ConvResNet

SMALL_MLP = dict(hidden_dims=(8, 8))
SMALL_CONV = dict(channels=4, num_blocks=1)


def _inputs(shape, batch=3, seed=0):
    # numpy draws: no JAX compilation per shape
    return jnp.asarray(np.random.default_rng(seed).normal(size=(batch, *shape)), jnp.float32)


def _context(dim, batch=3, seed=7):
    return _inputs((dim,), batch, seed)


def _init(bij, x, context=None, seed=1):
    return bij.init(jax.random.key(seed), x, context, method="forward_and_log_det")


def _forward(bij, variables, x, context=None):
    return bij.apply(variables, x, context, method="forward_and_log_det")


def _inverse(bij, variables, y, context=None):
    return bij.apply(variables, y, context, method="inverse_and_log_det")


def _randomise(variables, seed=3, std=0.5):
    """Perturb every parameter randomly (non-trivial scale, biases and norms)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + std * rng.normal(size=a.shape).astype(a.dtype), variables)


def _coupling(event_shape, mask, parity, **kwargs):
    options = SMALL_MLP if len(event_shape) == 1 else SMALL_CONV
    return jb.AffineCoupling(event_shape, mask, parity, **{**options, **kwargs})


def conditioning_mask(event_shape, mask, parity) -> np.ndarray:
    """Boolean array of the event shape, True on the coordinates the coupling leaves unchanged.

    Written from the documented definitions, independently of the implementation.
    """
    if mask == "alternating":
        return np.arange(event_shape[0]) % 2 == parity
    if mask in ("half", "channel"):
        n = event_shape[-1]
        first_half = np.arange(n) < n // 2
        last_axis = first_half if parity == 0 else ~first_half
        return np.broadcast_to(last_axis, event_shape)
    h, w, _ = event_shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.broadcast_to(((rows + cols) % 2 == parity)[..., None], event_shape)


MASK_CONFIGS = [
    ((5,), "alternating", 0),
    ((5,), "alternating", 1),
    ((5,), "half", 0),
    ((5,), "half", 1),
    ((4, 4, 2), "checkerboard", 0),
    ((4, 4, 2), "checkerboard", 1),
    ((4, 4, 3), "channel", 0),
    ((4, 4, 3), "channel", 1),
]


@pytest.mark.parametrize("event_shape,mask,parity", MASK_CONFIGS)
def test_conditioning_coordinates_unchanged_and_others_transformed(event_shape, mask, parity):
    bij = _coupling(event_shape, mask, parity, zero_init_last=False)
    x = _inputs(event_shape)
    variables = _init(bij, x)
    y, _ = _forward(bij, variables, x)
    m = conditioning_mask(event_shape, mask, parity)
    y, x = np.asarray(y), np.asarray(x)
    np.testing.assert_array_equal(y[:, m], x[:, m])
    assert np.all(y[:, ~m] != x[:, ~m]), "every transformed coordinate should change"


@pytest.mark.parametrize(
    "event_shape,mask", [((5,), "alternating"), ((4, 4, 2), "checkerboard"), ((4, 4, 2), "channel")]
)
def test_zero_init_coupling_is_identity_but_trainable(event_shape, mask):
    bij = _coupling(event_shape, mask, 0)  # zero_init_last=True by default
    x = _inputs(event_shape)
    variables = _init(bij, x)
    y, log_det = _forward(bij, variables, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, np.zeros(3))
    np.testing.assert_array_equal(_inverse(bij, variables, x)[0], x)

    last = "out" if len(event_shape) == 1 else "conv_out"
    grad = jax.grad(lambda v: jnp.sum(_forward(bij, v, x)[0] ** 2))(variables)
    assert np.any(grad["params"]["net"][last]["kernel"] != 0), "zero-init layer gets no gradient"


@pytest.mark.parametrize(
    "event_shape,mask", [((5,), "alternating"), ((4, 4, 2), "checkerboard"), ((4, 4, 2), "channel")]
)
def test_context_changes_the_output(event_shape, mask):
    bij = _coupling(event_shape, mask, 1, context_dim=3, zero_init_last=False)
    x = _inputs(event_shape)
    context = _context(3)
    variables = _init(bij, x, context)
    y1, ld1 = _forward(bij, variables, x, context)
    y2, ld2 = _forward(bij, variables, x, context + 1.0)
    m = conditioning_mask(event_shape, mask, 1)
    assert np.all(np.asarray(y1)[:, ~m] != np.asarray(y2)[:, ~m])
    assert np.all(ld1 != ld2)
    np.testing.assert_allclose(_inverse(bij, variables, y2, context + 1.0)[0], x, atol=1e-5)


def test_context_is_checked():
    bij = _coupling((5,), "alternating", 0, context_dim=3)
    x = _inputs((5,))
    with pytest.raises(ValueError, match="no context"):
        _init(bij, x)
    with pytest.raises(ValueError, match="context"):
        _init(bij, x, _context(2))


def test_unbatched_context_broadcasts_over_the_batch():
    bij = _coupling((4, 4, 2), "channel", 0, context_dim=3, zero_init_last=False)
    x = _inputs((4, 4, 2))
    context = _context(3, batch=1)
    variables = _init(bij, x, context)
    y_shared, _ = _forward(bij, variables, x, context[0])
    y_tiled, _ = _forward(bij, variables, x, jnp.tile(context, (3, 1)))
    np.testing.assert_allclose(y_shared, y_tiled, rtol=1e-6)


# The split implementation against a masked one ------------------------------------------------
def masked_reference(bij, variables, x, context, inverse):
    """Textbook masked coupling (distrax-style) with the coupling's own parameters.

    The conditioner sees x ⊙ m over the whole last axis and outputs 2·n values for all n
    coordinates of the last axis. Its parameters are the coupling's, scattered: first-layer
    kernel rows at the conditioning positions (other rows multiply zeros anyway), last-layer
    columns at the transformed positions (the rest are masked out by 1 - m).
    """
    event_shape, n = bij.event_shape, bij.event_shape[-1]
    m_last = conditioning_mask(event_shape, bij.mask, bij.parity).reshape(-1, n)[0]
    cond, trans = np.flatnonzero(m_last), np.flatnonzero(~m_last)
    d = len(cond)
    params = jax.tree.map(lambda a: a, variables["params"])  # shallow copy of the dicts
    net = dict(params["net"])
    image = len(event_shape) == 3
    first, last = ("conv_in", "conv_out") if image else ("hidden_0", "out")

    w1 = net[first]["kernel"]  # (..., d [+ K], hidden)
    k = w1.shape[-2] - d
    w1_full = jnp.zeros((*w1.shape[:-2], n + k, w1.shape[-1]), w1.dtype)
    w1_full = w1_full.at[..., cond, :].set(w1[..., :d, :]).at[..., n:, :].set(w1[..., d:, :])
    net[first] = {**net[first], "kernel": w1_full}

    wo, bo = net[last]["kernel"], net[last]["bias"]
    nt = len(trans)
    wo_full = jnp.zeros((*wo.shape[:-1], 2 * n), wo.dtype)
    wo_full = wo_full.at[..., trans].set(wo[..., :nt]).at[..., n + trans].set(wo[..., nt:])
    bo_full = jnp.zeros(2 * n, bo.dtype).at[trans].set(bo[:nt]).at[n + trans].set(bo[nt:])
    net[last] = {"kernel": wo_full, "bias": bo_full}
    scale_full = jnp.zeros(n).at[trans].set(params["scale"])

    if image:
        full_net = ConvResNet(bij.channels, bij.num_blocks, 2 * n)
    else:
        full_net = MLP(bij.hidden_dims, 2 * n)
    m = jnp.asarray(m_last, x.dtype)

    inp = x * m  # the conditioning coordinates are the same in x and y
    if context is not None:
        c = context[:, None, None, :] if image else context
        inp = jnp.concatenate([inp, jnp.broadcast_to(c, (*inp.shape[:-1], c.shape[-1]))], -1)
    out = full_net.apply({"params": net}, inp)
    log_scale = scale_full * jnp.tanh(out[..., :n]) * (1 - m)
    shift = out[..., n:] * (1 - m)
    log_det = jnp.sum(log_scale, axis=tuple(range(1, x.ndim)))
    if inverse:
        return (x - shift) * jnp.exp(-log_scale), -log_det
    return x * jnp.exp(log_scale) + shift, log_det


@pytest.mark.parametrize(
    "event_shape,mask,parity,context_dim",
    [
        ((5,), "alternating", 0, None),
        ((5,), "alternating", 1, 3),
        ((4,), "alternating", 0, None),  # even sizes: split from a (D/2, 2) view
        ((4,), "alternating", 1, 2),
        ((5,), "half", 0, None),
        ((5,), "half", 1, None),
        ((4, 4, 3), "channel", 0, None),
        ((4, 4, 3), "channel", 1, 2),
    ],
)
def test_split_coupling_equals_masked_reference(event_shape, mask, parity, context_dim):
    bij = _coupling(event_shape, mask, parity, context_dim=context_dim, zero_init_last=False)
    x = _inputs(event_shape)
    context = None if context_dim is None else _context(context_dim)
    variables = _randomise(_init(bij, x, context))
    for inverse in (False, True):
        method = _inverse if inverse else _forward
        y, log_det = method(bij, variables, x, context)
        y_ref, log_det_ref = masked_reference(bij, variables, x, context, inverse)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(log_det, log_det_ref, rtol=1e-5, atol=1e-5)


# Conditioners ------------------------------------------------------------------------------
def test_conditioner_factory_gets_the_output_size():
    factory = functools.partial(MLP, (8,), zero_init_last=True)
    bij = jb.AffineCoupling((5,), "alternating", 1, conditioner=factory)
    x = _inputs((5,))
    variables = _init(bij, x)
    assert variables["params"]["net"]["out"]["kernel"].shape == (8, 2 * 3)
    np.testing.assert_array_equal(_forward(bij, variables, x)[0], x)


def test_conditioner_module_with_wrong_output_size_is_rejected():
    bij = jb.AffineCoupling((5,), "alternating", 0, conditioner=MLP((8,), 3))
    with pytest.raises(ValueError, match="conditioner must output"):
        _init(bij, _inputs((5,)))


def test_conditioner_factory_must_return_a_module():
    bij = jb.AffineCoupling((5,), "alternating", 0, conditioner=lambda n: lambda h: h)
    with pytest.raises(TypeError, match="Flax module"):
        _init(bij, _inputs((5,)))


def test_wrong_input_shape_is_rejected():
    bij = _coupling((5,), "alternating", 0)
    with pytest.raises(ValueError, match="expected inputs"):
        _init(bij, _inputs((4,)))


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(event_shape=(5,), mask="checkerboard"), ValueError),
        (dict(event_shape=(4, 4, 2), mask="alternating"), ValueError),
        (dict(event_shape=(5,), parity=2), ValueError),
        (dict(event_shape=(5,), parity=True), ValueError),
        (dict(event_shape=(1,)), ValueError),
        (dict(event_shape=(4, 4, 1), mask="channel"), ValueError),
        (dict(event_shape=(1, 1, 3), mask="checkerboard"), ValueError),
        (dict(event_shape=(4, 4)), ValueError),
        (dict(event_shape=5), TypeError),
        (dict(event_shape=(5,), context_dim=0), ValueError),
        (dict(event_shape=(5,), conditioner=3), TypeError),
    ],
)
def test_bad_coupling_arguments_fail_at_construction(kwargs, error):
    with pytest.raises(error, match="AffineCoupling"):
        jb.AffineCoupling(**kwargs)


def test_default_masks():
    assert jb.AffineCoupling((5,)).mask == "alternating"
    assert jb.AffineCoupling((4, 4, 2)).mask == "checkerboard"
    assert jb.AffineCoupling((4, 4, 2)).event_ndims == 3


# Squeeze and FactorOut ---------------------------------------------------------------------
SQUEEZE = jb.Squeeze()


def test_squeeze_layout_round_trip_and_log_det():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    y, log_det = SQUEEZE.apply({}, x, method="forward_and_log_det")
    assert y.shape == (2, 2, 3, 12)
    xn, yn = np.asarray(x), np.asarray(y)
    for i, j, dh, dw, c in np.ndindex(2, 3, 2, 2, 3):
        np.testing.assert_array_equal(
            yn[:, i, j, (2 * dh + dw) * 3 + c], xn[:, 2 * i + dh, 2 * j + dw, c]
        )
    np.testing.assert_array_equal(log_det, np.zeros(2))
    x_back, inv_log_det = SQUEEZE.apply({}, y, method="inverse_and_log_det")
    np.testing.assert_array_equal(x_back, x)
    np.testing.assert_array_equal(inv_log_det, np.zeros(2))


def test_squeeze_with_several_batch_axes_and_float64():
    with jax.enable_x64(True):
        x = jnp.ones((2, 3, 4, 4, 1), jnp.float64)
        y, log_det = SQUEEZE.apply({}, x, method="forward_and_log_det")
        assert y.shape == (2, 3, 2, 2, 4) and y.dtype == jnp.float64
        assert log_det.shape == (2, 3) and log_det.dtype == jnp.float64


@pytest.mark.parametrize("shape", [(3, 4, 3, 4, 2), (3, 4, 5, 2), (3, 3, 3, 1)])
def test_squeeze_rejects_odd_sizes(shape):
    with pytest.raises(ValueError, match="even height and width"):
        SQUEEZE.apply({}, jnp.zeros(shape), method="forward_and_log_det")


def test_squeeze_inverse_rejects_channels_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        SQUEEZE.apply({}, jnp.zeros((3, 2, 2, 6)), method="inverse_and_log_det")


@pytest.mark.parametrize("factored", ["first", "last"])
def test_factor_out_is_identity_on_the_factored_part(factored):
    inner = _coupling((3,), "alternating", 0, context_dim=2, zero_init_last=False)
    bij = jb.FactorOut(inner, factored=factored)
    x, context = _inputs((5,)), _context(2)
    variables = _init(bij, x, context)
    y, log_det = _forward(bij, variables, x, context)
    kept, processed = (
        (slice(0, 2), slice(2, 5)) if factored == "first" else (slice(3, 5), slice(0, 3))
    )
    np.testing.assert_array_equal(y[:, kept], x[:, kept])
    inner_vars = {"params": variables["params"]["inner"]}
    y_inner, ld_inner = _forward(inner, inner_vars, x[:, processed], context)
    np.testing.assert_array_equal(y[:, processed], y_inner)
    np.testing.assert_array_equal(log_det, ld_inner)
    # the inner coupling (parity 0 on 3 entries) transforms the middle entry of its part
    y_other_context = _forward(bij, variables, x, context + 1)[0]
    middle = processed.start + 1
    assert np.all(y_other_context[:, middle] != y[:, middle])


def test_factor_out_arguments_and_shape_checks():
    with pytest.raises(TypeError, match="FactorOut"):
        jb.FactorOut(MLP((4,), 2))
    with pytest.raises(ValueError, match="factored"):
        jb.FactorOut(jb.Identity(), factored="middle")
    with pytest.raises(ValueError, match="keep the shape"):
        jb.FactorOut(jb.Squeeze()).apply({}, jnp.zeros((1, 4, 4, 4)), method="forward")


# Builders ----------------------------------------------------------------------------------
def _couplings(bij):
    """All AffineCouplings in a flow, in list order (data side first)."""
    if isinstance(bij, jb.AffineCoupling):
        return [bij]
    children = list(getattr(bij, "bijectors", ()))
    for attr in ("bijector", "inner"):
        if isinstance(getattr(bij, attr, None), jb.Bijector):
            children.append(getattr(bij, attr))
    return [c for child in children for c in _couplings(child)]


def test_realnvp_structure():
    flow = jb.realnvp(6, num_layers=5, hidden_dims=(16,), mask="half")
    couplings = _couplings(flow)
    assert [c.parity for c in couplings] == [0, 1, 0, 1, 0]
    assert all(c.mask == "half" and c.event_shape == (6,) for c in couplings)
    with_norm = jb.realnvp(6, num_layers=2, actnorm=True)
    assert [type(b).__name__ for b in with_norm.bijectors] == [
        "ActNorm", "AffineCoupling", "ActNorm", "AffineCoupling"
    ]  # fmt: skip
    custom = jb.realnvp(6, num_layers=2, normalization=lambda: jb.Identity(event_ndims=1))
    assert len(custom.bijectors) == 4


def test_realnvp_is_identity_at_init_and_conditional():
    flow = jb.realnvp(4, num_layers=2, hidden_dims=(8,), context_dim=2)
    x, context = _inputs((4,)), _context(2)
    variables = _init(flow, x, context)
    y, log_det = _forward(flow, variables, x, context)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, np.zeros(3))


def test_multiscale_realnvp_follows_dinh_et_al_on_digits():
    flow = jb.multiscale_realnvp((8, 8, 1))
    layout = [(c.mask, c.event_shape, c.parity) for c in _couplings(flow)]
    assert layout == [
        *[("checkerboard", (8, 8, 1), p) for p in (0, 1, 0)],
        *[("channel", (4, 4, 4), p) for p in (0, 1, 0)],
        *[("checkerboard", (4, 4, 2), p) for p in (0, 1, 0, 1)],
    ]
    three = jb.multiscale_realnvp((8, 8, 3), num_scales=3, num_couplings_per_scale=2)
    shapes = [c.event_shape for c in _couplings(three)]
    assert (
        shapes
        == [(8, 8, 3)] * 2
        + [(4, 4, 12)] * 2
        + [(4, 4, 6)] * 2
        + [(2, 2, 24)] * 2
        + [(2, 2, 12)] * 4
    )


def test_multiscale_realnvp_is_identity_at_init():
    flow = jb.multiscale_realnvp(
        (4, 4, 1), num_couplings_per_scale=1, num_final_couplings=1, channels=4, num_blocks=0
    )
    x = _inputs((4, 4, 1))
    variables = _init(flow, x)
    y, log_det = _forward(flow, variables, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, np.zeros(3))


@pytest.mark.parametrize(
    "builder,kwargs",
    [
        (jb.multiscale_realnvp, dict(image_shape=(6, 6, 1), num_scales=3)),
        (jb.multiscale_realnvp, dict(image_shape=(2, 2, 1), num_scales=2)),
        (jb.multiscale_realnvp, dict(image_shape=(8, 8))),
        (jb.multiscale_realnvp, dict(image_shape=(8, 8, 1), num_scales=0)),
        (jb.realnvp, dict(event_dim=4, mask="checkerboard")),
        (jb.realnvp, dict(event_dim=1)),
        (jb.realnvp, dict(event_dim=4, num_layers=0)),
        (jb.realnvp, dict(event_dim=4, actnorm=True, normalization=lambda: jb.Identity())),
    ],
)
def test_bad_builder_arguments(builder, kwargs):
    with pytest.raises(ValueError, match="realnvp"):
        builder(**kwargs)


def test_builders_want_a_conditioner_factory_not_a_shared_module():
    with pytest.raises(TypeError, match="factory"):
        jb.realnvp(4, conditioner=MLP((8,), 4))
    with pytest.raises(TypeError, match="factory"):
        jb.multiscale_realnvp((4, 4, 1), conditioner=ConvResNet(4, 1, 2))
