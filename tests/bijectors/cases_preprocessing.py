"""Registry cases for the data-side bijectors of `jgen.distributions`."""

from jgen.distributions import LogitPreprocess
from tests.bijectors.registry import Case, Interval, normal_sampler


def _image_of(alpha: float) -> Interval:
    """LogitPreprocess(alpha) maps ℝ onto (-α/(1-2α), (1-α)/(1-2α)) ⊃ [0, 1] (the inverse's
    domain: y with α + (1-2α)·y in (0, 1))."""
    return Interval(-alpha / (1 - 2 * alpha), (1 - alpha) / (1 - 2 * alpha))


CASES = [
    Case(
        "logit_preprocess_image",
        lambda: LogitPreprocess(0.05),
        (2, 2, 1),
        normal_sampler(2.0),
        codomain=_image_of(0.05),
    ),
    Case(
        "logit_preprocess_vector",
        lambda: LogitPreprocess(0.0, event_ndims=1),
        (3,),
        codomain=_image_of(0.0),
    ),
]
