"""GPU measurements for issue 11, called by scripts/gpu_check.sh (kept short: GPU time is scarce).

Micro: fwd+bwd of each pair against native torch ops on the flat (256x4096) and conv
(32x64x32x32) shapes, CUDA-event medians of interleaved rounds; saved bytes per element (every
tensor autograd saves, counted with saved_tensors_hooks); the Triton gate kernels' bandwidth as a
fraction of a device-to-device copy of the same tensor. Macro: ResNet-18 (CIFAR stem) on random
3x32x32 batches of 256, SGD steps/s and peak CUDA memory, native ReLU / relu/exact /
relu/rectangular / native GELU / gelu/quantized(bits=2).

Not yet run on a GPU when written (no GPU in that session). `--device cpu --quick` is a smoke run
of the code paths on tiny shapes; its numbers mean nothing.

    python scripts/gpu_bench.py --json results/bench/h200.json
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.activations import backends, make_pair, apply_pair, triton_kernels  # noqa: E402
from harness.measure import count_saved  # noqa: E402

SHAPES = {"flat": (256, 4096), "conv": (32, 64, 32, 32)}
# (name, pair spec or None for native, native baseline name)
MICRO = [
    ("relu/exact", ("relu", "exact", {}), "relu"),
    ("relu/rectangular", ("relu", "rectangular", {}), "relu"),
    ("relu/positive_jam", ("relu", "positive_jam", {}), "relu"),
    ("relu/quantized:bits=2", ("relu", "quantized", {"bits": 2}), "relu"),
    ("gelu/quantized:bits=2", ("gelu", "quantized", {"bits": 2}), "gelu"),
    ("gelu/quantized:bits=4", ("gelu", "quantized", {"bits": 4}), "gelu"),
]
NATIVE = {"relu": torch.relu, "gelu": F.gelu}


class Timer:
    """Elapsed seconds of a callable: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def interleaved_medians(fns: dict, timer: Timer, rounds: int, warmup: int) -> dict:
    """Median seconds of each callable, measured in interleaved rounds (drift hits all alike)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(timer(fn))
    return {k: statistics.median(v) for k, v in samples.items()}


def saved_bytes(fn) -> int:
    """Bytes of every tensor autograd saves while `fn` runs (storage counted once, harness.measure)."""
    return count_saved(fn).total


def micro(device, shapes, dtypes, rounds, warmup) -> list[dict]:
    timer, rows = Timer(device), []
    for shape_name, shape in shapes.items():
        for dtype in dtypes:
            x = torch.randn(shape, device=device, dtype=dtype).requires_grad_()
            g = torch.randn(shape, device=device, dtype=dtype)
            n = x.numel()

            def fwd_bwd(f):
                return lambda: torch.autograd.backward(f(x), g)

            fns = {f"native {k}": fwd_bwd(f) for k, f in NATIVE.items()}
            specs = {}
            for name, (fwd, rule, params), _ in MICRO:
                specs[name] = make_pair(fwd, rule, **params)
                fns[name] = fwd_bwd(lambda t, s=specs[name]: apply_pair(t, s))
            # The Triton kernels alone against a device-to-device copy of x (read n, write n).
            detached, out = x.detach(), torch.empty_like(x)
            packed = triton_kernels.forward_pack(detached, 1, 0.0, math.inf, True, True)[1] if backends.backend_for(detached) is backends.TRITON else None
            fns["copy"] = lambda: out.copy_(detached)
            if packed is not None:
                fns["kernel forward_pack"] = lambda: triton_kernels.forward_pack(detached, 1, 0.0, math.inf, True, True)
                fns["kernel gate_mul"] = lambda: triton_kernels.gate_mul(g, packed, 0.0, 1.0)
            med = interleaved_medians(fns, timer, rounds, warmup)
            bytes_copy = 2 * n * x.element_size()
            copy_bw = bytes_copy / med["copy"]
            base = {"shape": shape_name, "dims": list(shape), "dtype": str(dtype).removeprefix("torch.")}
            for k, f in NATIVE.items():
                rows.append({**base, "entry": f"native {k}", "seconds": med[f"native {k}"],
                             "saved_bytes_per_element": saved_bytes(fwd_bwd(f)) / n})
            for name, _, native in MICRO:
                rows.append({**base, "entry": name, "seconds": med[name], "baseline": f"native {native}",
                             "ratio": med[name] / med[f"native {native}"],
                             "saved_bytes_per_element": saved_bytes(fns[name]) / n})
            if packed is not None:
                # forward_pack reads x, writes y and n/8 bytes; gate_mul reads g and n/8 bytes, writes n.
                moved = 2 * n * x.element_size() + packed.numel()
                for k in ("kernel forward_pack", "kernel gate_mul"):
                    rows.append({**base, "entry": k, "seconds": med[k], "bytes": moved,
                                 "fraction_of_copy_bandwidth": moved / med[k] / copy_bw})
            rows.append({**base, "entry": "copy", "seconds": med["copy"], "bandwidth_GBps": copy_bw / 1e9})
    return rows


def macro(device, batch, steps, warmup) -> list[dict]:
    """ResNet-18 training steps/s and peak memory for each activation configuration."""
    try:
        from harness.activations import ActFactory
        from harness.models.resnet import build_resnet18
    except ImportError as exc:  # torchvision missing on the machine
        return [{"skipped": f"{type(exc).__name__}: {exc}"}]
    configs = [("native relu", nn.ReLU), ("relu/exact", ActFactory("relu", "exact")),
               ("relu/rectangular", ActFactory("relu", "rectangular")), ("native gelu", nn.GELU),
               ("gelu/quantized:bits=2", ActFactory("gelu", "quantized", backward_params={"bits": 2}))]
    rows = []
    data = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    for name, act in configs:
        torch.manual_seed(0)
        model = build_resnet18(input_shape=(3, 32, 32), num_classes=10, act=act).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(data), labels).backward()
            opt.step()

        for _ in range(warmup):
            step()
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        rows.append({"entry": name, "batch": batch, "steps": steps, "steps_per_second": steps / seconds,
                     "peak_memory_bytes": peak})
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few rounds (a smoke run)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-macro", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    shapes = {"flat": (8, 64), "conv": (2, 4, 5, 7)} if args.quick else SHAPES
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    started = time.perf_counter()
    result = {
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                        "cuda": torch.version.cuda, "activation_triton": triton_kernels.status()},
        "micro": micro(device, shapes, dtypes, rounds=5 if args.quick else 100, warmup=2 if args.quick else 10),
    }
    if not args.no_macro:
        result["macro"] = macro(device, batch=4 if args.quick else 256, steps=2 if args.quick else 20,
                                warmup=1 if args.quick else 5)
    result["environment"]["activation_triton"] = triton_kernels.status()  # `used` after the runs
    result["seconds"] = time.perf_counter() - started
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    for row in result["micro"]:
        print({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    for row in result.get("macro", []):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
