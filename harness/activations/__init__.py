"""Decoupled activation functions: forward f(x), backward dL/dy * g(x) with g chosen freely.

- `forwards.py`: forward functions and their exact derivatives.
- `rules.py`: surrogate / straight-through / jamming backward rules; `spiking.py`: the
  SpikingJelly and snnTorch surrogates; `aliases.py`: second names (swish, tied, ...).
- `combinators.py`: exact, derivative_of, noise, quantized (Few-Bit Backward, `fewbit.py`);
  `transforms.py`: FreeGrad's gradient transforms (scale, clip_norm, centralize).
- `saved_state.py`: what each rule stores for backward and how g is formed from it;
  `packing.py`: the 1- and b-bit layout and its reference code.
- `backends/`: the one selector of who runs the bit work (torch reference, numpy, the C++ CPU
  kernels of `kernels.py` + `csrc/`, the Triton kernels of `triton_kernels.py`, plain ops inside
  compiled graphs); `compile_model` torch.compiles with the CPU kernels built first.
- `pair.py`: the single autograd.Function; `ActivationPair` module and `pair` functional form.
- `swap.py`: `swap_activations` for any nn.Module; `factory.py`: `ActFactory` for models.
"""
from .definitions import FORWARDS, RULES, BoundForward, build_forward, build_rule, register_forward, register_rule
from .factory import ActFactory
from .backends import compile_model
from .pair import ActivationPair, PairSpec, apply_pair, make_pair, pair
from harness.errors import ParameterError, UnknownNameError
from .saved_state import BoundRule, RandomSource, Saves
from .swap import DEFAULT_KINDS, swap_activations

__all__ = [
    "FORWARDS", "RULES", "ActFactory", "ActivationPair", "BoundForward", "BoundRule", "PairSpec",
    "ParameterError", "RandomSource", "Saves", "UnknownNameError", "DEFAULT_KINDS", "apply_pair",
    "build_forward", "build_rule", "compile_model", "make_pair", "pair", "register_forward", "register_rule", "swap_activations",
]
