"""Registry cases for affine couplings, squeeze / factor-out and the ready-made RealNVP flows.

Every coupling uses ``zero_init_last=False``: with the default zero-initialised last layer a
coupling is the identity at init and the Jacobian checks could not fail.
"""

from jgen import bijectors as jb
from jgen.nets import MLP
from tests.bijectors.registry import Case

TINY = dict(hidden_dims=(8,), zero_init_last=False)
TINY_CONV = dict(channels=4, num_blocks=0, zero_init_last=False)  # conv in, norm, conv out


def _coupling(event_shape, mask, parity=0, **kwargs):
    options = TINY if len(event_shape) == 1 else TINY_CONV
    return lambda: jb.AffineCoupling(event_shape, mask, parity, **{**options, **kwargs})


CASES = [
    Case("coupling_alternating_parity0", _coupling((5,), "alternating", 0), (5,)),
    Case("coupling_alternating_parity1", _coupling((5,), "alternating", 1), (5,)),
    Case("coupling_half_odd_dim_parity0", _coupling((5,), "half", 0), (5,)),
    Case("coupling_half_odd_dim_parity1", _coupling((5,), "half", 1), (5,)),
    Case(
        "coupling_alternating_with_context",
        _coupling((5,), "alternating", 1, context_dim=3),
        (5,),
        context_dim=3,
    ),
    Case(
        "coupling_module_conditioner",
        lambda: jb.AffineCoupling((4,), "half", conditioner=MLP((8,), 4)),
        (4,),
    ),
    Case("coupling_checkerboard_parity0", _coupling((4, 4, 2), "checkerboard", 0), (4, 4, 2)),
    Case("coupling_channel_odd_parity1", _coupling((4, 4, 3), "channel", 1), (4, 4, 3)),
    Case(
        "coupling_checkerboard_with_context",
        _coupling((4, 4, 2), "checkerboard", 1, context_dim=3),
        (4, 4, 2),
        context_dim=3,
    ),
    Case(
        "coupling_channel_with_context",
        _coupling((4, 4, 2), "channel", 0, context_dim=3),
        (4, 4, 2),
        context_dim=3,
    ),
    Case("squeeze", lambda: jb.Squeeze(), (4, 4, 2)),
    Case("unsqueeze", lambda: jb.Inverse(jb.Squeeze()), (2, 2, 8)),
    Case(
        "factor_out_image_coupling",
        lambda: jb.FactorOut(_coupling((4, 4, 1), "checkerboard", 1)()),
        (4, 4, 2),
    ),
    Case(
        "factor_out_last_vector_coupling",
        lambda: jb.FactorOut(_coupling((3,), "alternating", 0)(), factored="last"),
        (5,),
    ),
    Case(
        "realnvp_small",
        lambda: jb.realnvp(5, num_layers=3, hidden_dims=(8,), zero_init_last=False),
        (5,),
    ),
    Case(
        "realnvp_half_with_context",
        lambda: jb.realnvp(
            4, num_layers=2, hidden_dims=(8,), mask="half", context_dim=2, zero_init_last=False
        ),
        (4,),
        context_dim=2,
    ),
    Case(  # jgen.bijectors.Repeat, even-sized 'alternating' splits, an odd last layer, context
        "realnvp_scan_layers",
        lambda: jb.realnvp(
            4, num_layers=3, hidden_dims=(8,), context_dim=2, scan_layers=True, zero_init_last=False
        ),
        (4,),
        context_dim=2,
    ),
    Case(
        "multiscale_realnvp_digits",
        lambda: jb.multiscale_realnvp(
            (8, 8, 1),
            num_scales=2,
            num_couplings_per_scale=1,
            num_final_couplings=2,
            channels=4,
            num_blocks=0,
            zero_init_last=False,
        ),
        (8, 8, 1),
    ),
]
