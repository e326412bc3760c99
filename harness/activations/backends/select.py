"""The one place that decides which backend runs a pair's bit work for a tensor.

| tensor                                           | backend                        |
|--------------------------------------------------|--------------------------------|
| inside a torch.compile trace                     | graph (plain ops + dispatcher ops) |
| float32 on CPU, kernels enabled and built        | cpu (C++ kernels)              |
| other CPU tensors                                | numpy                          |
| float16/bfloat16/float32 on CUDA, Triton present | triton                         |
| anything else                                    | reference                      |

The CPU kernels are built on first use (about a minute, once per environment, kernels.py);
never while Dynamo traces: that would break the graph, so call `kernels.load()` (or
`compile_model`) before compiling to get the C++ ops inside graphs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels, triton_kernels
from .cpu import CpuKernels
from .graph import Graph
from .numpy_cpu import Numpy
from .reference import Reference
from .switch import enabled, set_enabled  # noqa: F401  (the switch is part of the selector's API)
from . import switch
from .triton import Triton

REFERENCE, NUMPY, CPU, TRITON, GRAPH = Reference(), Numpy(), CpuKernels(), Triton(), Graph()
BACKENDS = {b.name: b for b in (REFERENCE, NUMPY, CPU, TRITON, GRAPH)}


def backend_for(t: Tensor):
    """The backend that runs the bit work of tensor `t` (see the module table)."""
    if torch.compiler.is_compiling():
        return GRAPH
    if t.is_cpu:  # not t.device.type: building a device object costs more than the rest here
        if t.dtype == torch.float32 and switch._enabled and (kernels._module is not None or kernels.load() is not None):
            return CPU
        return NUMPY
    if t.is_cuda and switch._enabled and t.dtype in triton_kernels.DTYPES and triton_kernels.available():
        return TRITON
    return REFERENCE


def compile_model(model: torch.nn.Module, **options):
    """`torch.compile(model, **options)`, with the CPU kernels built first, so graphs traced
    afterwards call them as dispatcher ops (a model compiled before they exist uses the
    `harness::*` ops: same numbers, a Python call more per op)."""
    kernels.load()
    return torch.compile(model, **options)
