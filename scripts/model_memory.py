"""Whole-model memory kept for backward, pair against torch's native op (README "Speed").

    python scripts/model_memory.py

MLP 512-1024-1024-10, batch 256, float32: deduplicated saved bytes that are not parameters
(`harness.train.memory.model_saved_memory`, cross-entropy loss included), per pair.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from harness.activations import ActivationPair  # noqa: E402
from harness.train.memory import model_saved_memory  # noqa: E402

PAIRS = [("relu", "exact", {}), ("relu", "rectangular", {}), ("gelu", "exact", {}),
         ("gelu", "quantized", {"bits": 2}), ("gelu", "quantized", {"bits": 1}), ("silu", "b_silu", {})]


def main() -> None:
    """Print one line per pair: MB kept with the pair, with the native op, and the ratio."""
    torch.manual_seed(0)
    x, y = torch.randn(256, 512), torch.randint(0, 10, (256,))
    for forward, backward, params in PAIRS:
        model = nn.Sequential(nn.Linear(512, 1024), ActivationPair(forward, backward, **params), nn.Linear(1024, 1024),
                              ActivationPair(forward, backward, **params), nn.Linear(1024, 10))
        m = model_saved_memory(model, lambda: F.cross_entropy(model(x), y))
        label = f"{forward}/{backward}" + "".join(f" {k}={v}" for k, v in params.items())
        print(f"{label:28s} {m['saved_bytes'] / 1e6:6.2f} MB   native {m['native_op']}: {m['native_saved_bytes'] / 1e6:6.2f} MB"
              f"   x native {m['vs_native']:.3f}")


if __name__ == "__main__":
    main()
