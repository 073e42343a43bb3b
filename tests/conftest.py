"""Test-wide JAX settings: 4 simulated CPU devices, so every trainer test is data-parallel, and
XLA's backend optimisations off (``JAX_DISABLE_MOST_OPTIMIZATIONS``: LLVM at -O0, no expensive
passes). The suite is dominated by compiling many small programs that then run a few times;
unoptimised code generation compiles them about a third faster, which more than pays for the
slower kernels even in the learning tests (measured on tests/bijectors/test_properties.py and
tests/cnf/test_multiscale.py). The HLO, and so what is computed, is the same program; set
JAX_DISABLE_MOST_OPTIMIZATIONS=0 to run the suite on optimised code."""

import os

# Must be set before jax initialises its backends (conftest is imported before the tests).
_flag = "--xla_force_host_platform_device_count=4"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
