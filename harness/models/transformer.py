"""A small pre-norm Transformer encoder classifier over signal chunks, sequence steps or patches."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models.registry import ActFn, ModelDataMismatch, register_model

_POOLS = ("cls", "mean")
# Tried in order when patch_size is None: the largest that tiles the input.  For 1x28x28 that is
# 7 (16 tokens), for 3x32x32 4 (64 tokens), for MNIST-1D's 40 samples 4 (10 tokens).
_AUTO_IMAGE_PATCH = (7, 4, 2, 1)
_AUTO_SIGNAL_CHUNK = (4, 2, 1)


def resolve_patch_size(input_shape: tuple[int, ...], patch_size: int | None) -> int:
    """Patch (image) / chunk (signal) size actually used; 1 for (T, F) sequences (a step a token).

    Raises ModelDataMismatch when an explicit ``patch_size`` does not tile the input.
    """
    if len(input_shape) == 2:
        return 1
    dims = input_shape[:1] if len(input_shape) == 1 else input_shape[1:]
    if patch_size is None:
        candidates = _AUTO_SIGNAL_CHUNK if len(input_shape) == 1 else _AUTO_IMAGE_PATCH
        return next(p for p in candidates if all(d % p == 0 for d in dims))
    if patch_size < 1 or any(d % patch_size for d in dims):
        what = "a sequence (L,)" if len(input_shape) == 1 else "an image (C, H, W)"
        raise ModelDataMismatch.for_model(
            "transformer", f"{what} whose spatial sizes are divisible by patch_size={patch_size}",
            input_shape, hint="set patch_size to a divisor, or null to choose one automatically",
        )
    return patch_size


def _check(
    input_shape: tuple[int, ...], *, dim: int, heads: int, pool: str, patch_size: int | None,
    **_: object,
) -> None:
    if dim % heads:
        raise ValueError(f"transformer dim ({dim}) must be divisible by heads ({heads})")
    if pool not in _POOLS:
        raise ValueError(f"transformer pool must be one of {_POOLS}, got {pool!r}")
    resolve_patch_size(input_shape, patch_size)


class Tokenizer(nn.Module):
    """Sample -> (B, N, dim) token embeddings: linear chunk / step embedding or patch conv."""

    def __init__(self, input_shape: tuple[int, ...], dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        if len(input_shape) == 3:
            channels, height, width = input_shape
            # A stride=kernel conv is exactly a shared linear map on non-overlapping patches.
            self.embed: nn.Module = nn.Conv2d(channels, dim, patch, stride=patch)
            self.num_tokens = (height // patch) * (width // patch)
        else:
            features = patch if len(input_shape) == 1 else input_shape[1]
            self.embed = nn.Linear(features, dim)
            self.num_tokens = input_shape[0] // patch if len(input_shape) == 1 else input_shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.embed(x).flatten(2).transpose(1, 2)
        if x.dim() == 2:
            x = x.reshape(x.shape[0], -1, self.patch)
        return self.embed(x)


class Block(nn.Module):
    """Pre-norm encoder block: x + MHA(LN(x)), then x + MLP(LN(x)) with MLP = Linear-act-Linear."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, act: ActFn) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TransformerClassifier(nn.Module):
    """Tokenizer + learned positional embedding (+ CLS) -> blocks -> LayerNorm -> pool -> linear."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, act: ActFn, depth: int,
        dim: int, heads: int, mlp_ratio: float, patch: int, pool: str,
    ) -> None:
        super().__init__()
        self.tokenizer = Tokenizer(input_shape, dim, patch)
        self.pool = pool
        n = self.tokenizer.num_tokens + (1 if pool == "cls" else 0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)  # ViT's init
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, act) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer(x)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        h = self.norm(self.blocks(tokens + self.pos_embed))
        return self.head(h[:, 0] if self.pool == "cls" else h.mean(dim=1))


@register_model("transformer", kinds=("sequence", "image"), check=_check)
def build_transformer(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn,
    depth: int = 2, dim: int = 64, heads: int = 4, mlp_ratio: float = 2.0,
    patch_size: int | None = None, pool: str = "cls",
) -> nn.Module:
    """Small pre-norm Transformer encoder (Vaswani et al. 2017; ViT tokenisation of Dosovitskiy
    et al. 2021): ``depth`` blocks of ``dim``-wide multi-head self-attention (``heads`` heads,
    torch's nn.MultiheadAttention) and an MLP ``Linear(dim, mlp_ratio*dim) -> act -> Linear``,
    learned positional embeddings, a CLS token (``pool="cls"``) or mean pooling, final LayerNorm.

    Tokens: a sequence (L,) is cut into chunks of ``patch_size`` values, an (L, F) sequence gives
    one token per step, an image gives ``patch_size``x``patch_size`` patches.  ``patch_size=None``
    picks the largest of 4/2/1 (signals) or 7/4/2/1 (images) that tiles the input.
    One activation slot per block (attention softmax is not an elementwise activation).
    """
    if depth < 1 or mlp_ratio <= 0:
        raise ValueError(
            f"transformer needs depth >= 1 and mlp_ratio > 0, got {depth}, {mlp_ratio}"
        )
    patch = resolve_patch_size(input_shape, patch_size)
    return TransformerClassifier(
        input_shape, num_classes, act, depth, dim, heads, mlp_ratio, patch, pool
    )
