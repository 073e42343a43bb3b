"""Registry cases for the data-side bijectors of `jgen.distributions`."""

from jgen.distributions import LogitPreprocess
from tests.bijectors.registry import Case, normal_sampler

CASES = [
    Case("logit_preprocess_image", lambda: LogitPreprocess(0.05), (2, 2, 1), normal_sampler(2.0)),
    Case("logit_preprocess_vector", lambda: LogitPreprocess(0.0, event_ndims=1), (3,)),
]
