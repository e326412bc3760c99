"""Provenance of a measurement (a run record or a benchmark): versions, hardware, threads, commit."""
from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from harness import allocator
from harness.activations import fused, kernels, triton_kernels

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The harness checkout's commit (with '+dirty' if it has local changes), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def harness_version() -> str:
    """The installed harness package version."""
    try:
        from importlib.metadata import version

        return version("harness")
    except Exception:
        return "unknown"


def environment(device: torch.device) -> dict:
    """Everything needed to interpret a timing: versions, device, threads, CPU, commit."""
    device = torch.device(device)
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "harness_version": harness_version(),
        "git_commit": git_commit(),
        "activation_kernels": kernels.status(),  # compiled gate/code/jam kernels in use, or why not
        # Triton kernels for CUDA tensors (imports triton, ~0.5 s): only where a GPU can use them
        "activation_triton": triton_kernels.status() if device.type == "cuda" else None,
        "fused_smooth_backward": fused.enabled(),  # smooth rules' backward compiled (HARNESS_FUSE)
        "malloc": allocator.status(),  # freed tensor memory kept in the process (harness/allocator.py)
    }
    return env
