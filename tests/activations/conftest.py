"""Fixtures shared by the activation tests."""
import pytest


@pytest.fixture(params=["avx512", "avx2", "scalar", "numpy"])
def cpu_path(request):
    """Run a test through each instruction-set body of the compiled kernels and through numpy."""
    from harness.activations import backends, kernels

    if request.param == "numpy":
        previous = backends.set_enabled(False)
        try:
            yield request.param
        finally:
            backends.set_enabled(previous)
        return
    if kernels.load() is None:
        pytest.skip(f"compiled kernels unavailable: {kernels.status()['error']}")
    if request.param not in kernels.available_isas():
        pytest.skip(f"the {request.param} kernels are not available (CPU, or HARNESS_KERNEL_ISA)")
    previous = kernels.isa()
    assert kernels.set_isa(request.param) == request.param
    try:
        yield request.param
    finally:
        kernels.set_isa(previous)
