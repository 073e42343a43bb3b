"""jgen: deep generative models in JAX."""

from jgen import bijectors

__all__ = ["bijectors"]
__version__ = "0.1.0"
