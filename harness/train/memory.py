"""Memory measurements: bytes autograd saves for backward, and peak memory over a region.

Saved-tensor bytes are exact and device-independent (they count what the graph holds), so they
are the figure to compare rules by (docs/DESIGN.md section 2: store the least that g needs). Peak
memory is what the process really used, measured with a method that is named in the result.
"""
from __future__ import annotations

import resource
import sys
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from harness.activations import ActivationPair

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _storage_key(t: Tensor) -> tuple[int, int] | None:
    """(storage address, storage bytes): the identity of the memory a saved tensor keeps alive.

    Keyed on the whole storage rather than the view, because a view keeps its entire storage
    alive (a Linear layer saves its weight as a transposed view, for instance).
    """
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensors without storage (some subclasses)
        return None
    return storage.data_ptr(), storage.nbytes()


class _SavedLog:
    """Records every tensor autograd packs, and keeps it alive until `close()`.

    Holding the references matters for exactness: while fn() runs, a temporary that autograd
    saved and then released could otherwise have its address reused by another storage of the
    same size, and the two would be merged by the deduplication.
    """

    def __init__(self, tag: Callable[[], str] | None = None):
        self.tag = tag
        self.entries: list[tuple[tuple[int, int] | None, Tensor, str]] = []

    def pack(self, t: Tensor) -> Tensor:
        self.entries.append((_storage_key(t), t, self.tag() if self.tag else ""))
        return t

    @staticmethod
    def unpack(t: Tensor) -> Tensor:
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    def close(self) -> None:
        self.entries = [(key, None, tag) for key, _, tag in self.entries]  # type: ignore[misc]


def saved_tensor_bytes(fn: Callable[[], Any], params: Iterable[Tensor] = ()) -> dict:
    """Bytes autograd saves for backward while `fn()` runs (e.g. a forward pass and the loss).

    Returns {"total", "count", "by_dtype", "total_with_duplicates", "count_with_duplicates",
    "param_bytes"}:

    - "total": each distinct storage counted once, deduplicated by (storage address, storage
      bytes). Autograd often saves the same memory twice (a pair's output y, saved by an
      OUTPUT rule, is also the next Linear's saved input), and it is held once; "total" is the
      memory the graph really keeps alive. "count" is the number of distinct storages and
      "by_dtype" splits "total" by dtype name (e.g. "torch.float32", "torch.uint8").
    - "total_with_duplicates" / "count_with_duplicates": every save counted, as the naive sum.
    - "param_bytes": the part of "total" that is storage of `params` (e.g. `model.parameters()`):
      weights saved for backward exist anyway, so they are no extra memory.
    """
    param_keys = {_storage_key(p) for p in params}
    log = _SavedLog()
    try:
        with log.hooks():
            fn()
        return _tally(log.entries, param_keys)
    finally:
        log.close()


def _tally(entries, param_keys: set) -> dict:
    seen: set = set()
    total = dup_total = param_bytes = 0
    by_dtype: dict[str, int] = {}
    for key, tensor, _ in entries:
        nbytes = key[1] if key is not None else tensor.numel() * tensor.element_size()
        dup_total += nbytes
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        total += nbytes
        dtype = str(tensor.dtype)
        by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
        if key is not None and key in param_keys:
            param_bytes += nbytes
    return {
        "total": total,
        "count": len(seen) + sum(1 for key, _, _ in entries if key is None),
        "by_dtype": by_dtype,
        "total_with_duplicates": dup_total,
        "count_with_duplicates": len(entries),
        "param_bytes": param_bytes,
    }


def saved_bytes_by_activation(model: nn.Module, fn: Callable[[], Any]) -> dict:
    """Saved-tensor bytes of `fn()` split into what the ActivationPair modules add and the rest.

    Forward pre/post hooks on every ActivationPair in `model` mark the saves made inside a pair
    (the pack hook runs during the forward, inside the module call). Storages are deduplicated as
    in `saved_tensor_bytes`; a storage saved both inside a pair and elsewhere (a tanh pair's y is
    also the next Linear's input) counts as "other", because the pair adds no memory for it.

    Returns {"activations", "other", "total", "shared"}: "activations" = bytes saved only by the
    pairs (their marginal cost), "other" = everything else, "total" = activations + other,
    "shared" = the part of "other" that the pairs saved too.
    """
    depth = [0]  # a counter, not a flag, so nested pair calls cannot clear it early

    def enter(module, args):
        depth[0] += 1

    def leave(module, args, output):
        depth[0] -= 1

    handles = []
    for module in model.modules():
        if isinstance(module, ActivationPair):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    log = _SavedLog(tag=lambda: "pair" if depth[0] > 0 else "other")
    try:
        with log.hooks():
            fn()
        tags: dict[Any, set[str]] = {}
        sizes: dict[Any, int] = {}
        for i, (key, tensor, tag) in enumerate(log.entries):
            key = key if key is not None else ("nostorage", i)
            tags.setdefault(key, set()).add(tag)
            sizes[key] = key[1] if key[0] != "nostorage" else tensor.numel() * tensor.element_size()
    finally:
        log.close()
        for h in handles:
            h.remove()
    activations = sum(sizes[k] for k, t in tags.items() if t == {"pair"})
    shared = sum(sizes[k] for k, t in tags.items() if t == {"pair", "other"})
    other = sum(sizes[k] for k, t in tags.items() if "other" in t)
    return {"activations": activations, "other": other, "total": activations + other, "shared": shared}


# ---------------------------------------------------------------------------- peak memory


def _status_bytes(field: str) -> int | None:
    """A 'VmXXX:  1234 kB' line of /proc/self/status in bytes; None where unavailable."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS. False where not permitted."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Peak memory over a region, with the measuring method named in the result.

    Use as `with PeakMemory(device) as pm: ...` then `pm.result`, or `pm.start()` ... `pm.stop()`.
    The result is {"peak_bytes", "baseline_bytes", "delta_bytes", "method"}:

    - CUDA: the allocator's peak (reset at start) -> method "cuda.max_memory_allocated";
      baseline = memory allocated at start.
    - CPU on Linux: the kernel's peak resident set size, reset at start by writing 5 to
      /proc/self/clear_refs, read from VmHWM at stop -> method "linux VmHWM (peak RSS, reset at
      start)"; baseline = RSS at start.
    - Otherwise: getrusage ru_maxrss -> method "ru_maxrss (process lifetime peak)"; it cannot be
      reset, so in a reused process (Hydra's joblib launcher) it may reflect an earlier run.

    The reset at start matters because the joblib launcher reuses worker processes (docs/DESIGN.md
    section 4): without it a run would report the peak of whichever run came before.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.result: dict | None = None
        self._baseline: int | None = None
        self._method: str | None = None

    def start(self) -> "PeakMemory":
        """Reset the peak counter and record the baseline."""
        self.result = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._method = "cuda.max_memory_allocated"
            self._baseline = torch.cuda.memory_allocated(self.device)
        elif _reset_peak_rss() and _status_bytes("VmHWM") is not None:
            self._method = "linux VmHWM (peak RSS, reset at start)"
            self._baseline = _status_bytes("VmRSS")
        else:
            self._method = "ru_maxrss (process lifetime peak)"
            rss = _status_bytes("VmRSS")
            self._baseline = rss if rss is not None else _ru_maxrss_bytes()
        return self

    def stop(self) -> dict:
        """Read the peak since `start()`; returns (and stores in `.result`) the result dict."""
        if self._method is None:
            raise RuntimeError("PeakMemory.stop() called before start()")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._method.startswith("linux"):
            peak = _status_bytes("VmHWM")
        else:
            peak = _ru_maxrss_bytes()
        baseline = int(self._baseline or 0)
        self.result = {
            "peak_bytes": int(peak),
            "baseline_bytes": baseline,
            "delta_bytes": int(peak) - baseline,
            "method": self._method,
        }
        return self.result

    def __enter__(self) -> "PeakMemory":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["PeakMemory", "saved_bytes_by_activation", "saved_tensor_bytes"]


# ---------------------------------------------------------------------------- the model against native ops

# torch's own module for each forward (parameters by the forward's names). Step and sign have no
# native op with a gradient (their derivative is zero), SiLU with beta != 1 has none either.
_NATIVE: dict[str, Callable[..., nn.Module | None]] = {
    "identity": lambda: nn.Identity(),
    "relu": lambda: nn.ReLU(),
    "relu6": lambda: nn.ReLU6(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "elu": lambda alpha: nn.ELU(alpha),
    "selu": lambda: nn.SELU(),
    "celu": lambda alpha: nn.CELU(alpha),
    "gelu": lambda approximate: nn.GELU(approximate=approximate),
    "silu": lambda beta: nn.SiLU() if beta == 1.0 else None,
    "mish": lambda: nn.Mish(),
    "softplus": lambda beta: nn.Softplus(beta=beta),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "hardtanh": lambda min_val, max_val: nn.Hardtanh(min_val, max_val),
    "hardsigmoid": lambda: nn.Hardsigmoid(),
    "hardswish": lambda: nn.Hardswish(),
}


def native_module(forward: str, params: dict[str, Any] | None = None) -> nn.Module | None:
    """torch's own activation module computing `forward` with `params`, or None where torch has none
    (step, sign; silu with beta != 1)."""
    make = _NATIVE.get(forward)
    return make(**(params or {})) if make is not None else None


def _pair_slots(model: nn.Module) -> list[tuple[nn.Module, str, ActivationPair]]:
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, ActivationPair)]


def non_parameter_saved_bytes(model: nn.Module, fn: Callable[[], Any]) -> int:
    """Deduplicated bytes autograd saves while `fn()` runs, minus the storage of `model`'s parameters
    (weights saved for backward exist anyway): the memory a training step keeps for backward."""
    tally = saved_tensor_bytes(fn, params=model.parameters())
    return tally["total"] - tally["param_bytes"]


def model_saved_memory(model: nn.Module, fn: Callable[[], Any]) -> dict:
    """What the whole model keeps for backward with its pairs, and with torch's native op instead.

    `fn()` runs a forward (and loss) of `model`. Both figures are `non_parameter_saved_bytes`:
    deduplicated by storage, so native ReLU's saved output, which is the same storage as the next
    Linear's saved input, costs nothing extra, while a 1-bit mask costs 1/32 of it extra; GELU and
    SiLU save their input, which nothing else shares, so few-bit rules do save there
    (docs/DESIGN.md section 6). For the native figure every ActivationPair is swapped in place for
    `native_module` of its forward, measured, and put back (also when `fn` raises).

    Returns {"saved_bytes", "native_saved_bytes", "vs_native" (= saved / native), "native_op"
    (module class names, or None), "note", "method"}; the native entries are None where a pair's
    forward has no native op (step, sign), and "note" says why.
    """
    saved = non_parameter_saved_bytes(model, fn)
    out = {"saved_bytes": saved, "native_saved_bytes": None, "vs_native": None, "native_op": None, "note": None,
           "method": "saved_tensors_hooks, deduplicated by storage, parameters excluded, one training forward"}
    slots = _pair_slots(model)
    if not slots:
        out["note"] = "no activation pair in the model"
        return out
    natives: dict[int, nn.Module] = {}
    for _, _, pair in slots:
        if id(pair) not in natives:
            forward = pair.spec.forward
            native = native_module(forward.name, dict(forward.params))
            if native is None:
                out["note"] = f"torch has no native op with a gradient for forward {forward.name!r}"
                return out
            natives[id(pair)] = native.to(next(model.parameters(), torch.empty(0)).device)
    try:
        for parent, name, pair in slots:
            setattr(parent, name, natives[id(pair)])
        native_bytes = non_parameter_saved_bytes(model, fn)
    finally:
        for parent, name, pair in slots:
            setattr(parent, name, pair)
    out.update(native_saved_bytes=native_bytes, vs_native=saved / native_bytes if native_bytes else None,
               native_op=", ".join(sorted({type(m).__name__ for m in natives.values()})))
    return out


__all__ += ["model_saved_memory", "native_module", "non_parameter_saved_bytes"]
