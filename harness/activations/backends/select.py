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


#: Module-level switches of the pair library that decide what a graph traces: their guards stay,
#: so flipping one retraces (benchmarks flip them to compare variants in one process).
SWITCHES = ("RELU_KEEPS_Y", "EXTERN_MIN_ELEMENTS", "INPLACE", "_enabled")
_LIBRARY_GLOBALS = "G['__import_harness_dot_activations"
_TENSOR_GUARDS = ("TENSOR", "ALIASING", "DUPLICATE")


def library_guards_off(entries) -> list[bool]:
    """A Dynamo `guard_filter_fn`: drops the guards on harness.activations' own globals (its
    modules, classes, functions, constants: code that does not change while a process runs),
    keeping its `SWITCHES` and every tensor and aliasing guard.

    Dynamo checks every guard on every call. A pair module's trace reads ~40 such globals (the
    backend selector, the graph backend's functions, field indices), one guard each plus the
    accessors to reach them; inside a training loop they cost more than the graph's own kernels
    for the gate: forward calls of a 256-128-128-10 MLP (batch 256, 1 thread) ran 1.042x
    compiled native ReLU with them, 1.006x without (relu/exact, whose graph is native ReLU's;
    31 interleaved rounds). Guards on the model's own objects (modules, the pair's spec, rule and
    parameter tensor) all stay, so another pair, a swapped activation or other parameter shapes
    still recompile; replacing a function of harness.activations after compiling does not."""
    return [not (e.is_global and _LIBRARY_GLOBALS in e.name and not any(s in e.name for s in SWITCHES)
                 and not any(t in e.guard_type for t in _TENSOR_GUARDS)) for e in entries]


def compile_model(model: torch.nn.Module, **options):
    """`torch.compile(model, **options)`, with the CPU kernels built first, so graphs traced
    afterwards call them as dispatcher ops (a model compiled before they exist uses the
    `harness::*` ops: same numbers, a Python call more per op), and without Dynamo's guards on
    the pair library's own code (`library_guards_off`; combined with a `guard_filter_fn` in
    `options["options"]`; not with `mode`, which torch.compile takes only without options)."""
    kernels.load()
    if options.get("mode") is None:
        inner = dict(options.get("options") or {})
        user_filter = inner.get("guard_filter_fn")
        if user_filter is None:
            inner["guard_filter_fn"] = library_guards_off
        else:
            inner["guard_filter_fn"] = lambda entries: [a and b for a, b in zip(library_guards_off(entries), user_filter(entries))]
        options["options"] = inner
    return torch.compile(model, **options)
