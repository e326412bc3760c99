r"""``snr_adaptive``: the one learning-rate schedule that is ours (no library has it).

A base schedule (any registered shape of `harness.train.schedules`, itself a torch scheduler)
times a scale that follows the signal-to-noise ratio of the gradients; see
:class:`SNRAdaptiveSchedule` for the formula and why it is principled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.errors import ParameterError

from .lr_schedule import LRSchedule


class SNRAdaptiveSchedule(LRSchedule):
    r"""Base schedule times a scale that follows the signal-to-noise ratio of the gradients.

    Surrogate gradients are noisy; when a step's gradient is mostly noise a smaller step is better.
    With :math:`g_t` the gradient of step :math:`t` (all parameters of the optimizer, flattened;
    ``p.grad is None`` counts as zero), :math:`t = 1, 2, \dots` the number of observed steps:

    .. math::

        m_t &= \beta m_{t-1} + (1-\beta) g_t, \qquad
        v_t = \beta v_{t-1} + (1-\beta) g_t^2 \quad (\text{elementwise}, m_0 = v_0 = 0) \\
        \hat m_t &= m_t / (1-\beta^t), \qquad \hat v_t = v_t / (1-\beta^t)
            \quad (\text{Adam bias correction}) \\
        \rho_t &= \lVert \hat m_t \rVert^2 / \textstyle\sum_i \hat v_{t,i}
            \in [0, 1] \quad (0 \text{ if } \textstyle\sum \hat v_t = 0) \\
        c_t &= \textstyle\sum_s w_s^2 = \frac{(1-\beta)(1+\beta^t)}{(1+\beta)(1-\beta^t)}
            \quad (w_s = (1-\beta)\beta^{t-s}/(1-\beta^t), \text{ the EMA weights}) \\
        \tilde\rho_t &= \operatorname{clip}\big((\rho_t - c_t)/(1 - c_t),\ 0,\ 1\big)
            \quad (t \ge 2) \\
        \text{scale}_t &= \operatorname{clip}(\tilde\rho_t / \rho_{\text{ref}},\
            \text{min\_scale},\ \text{max\_scale}) \quad (t \ge \text{ref\_steps};
            \ 1 \text{ before}) \\
        \text{lr}_t &= \text{base}(t) \cdot \text{scale}_t

    Why this is principled: :math:`\rho_t \le 1` because :math:`\hat m^2 \le \hat v` elementwise
    (Jensen; the bias-corrected weights sum to 1). If :math:`g_s = \mu + \xi_s` with i.i.d. zero-mean
    noise, :math:`S = \lVert\mu\rVert^2`, :math:`N = E\lVert\xi\rVert^2`, then
    :math:`E\lVert\hat m\rVert^2 = S + c_t N` and :math:`E\sum\hat v = S + N`, so
    :math:`\tilde\rho_t \approx S/(S+N)`, the fraction of gradient energy that is signal
    (:math:`\approx 0` for pure noise, 1 for a constant gradient). The noise-limited optimal SGD
    step scales with exactly this fraction (McCandlish et al. 2018, "An Empirical Model of
    Large-Batch Training": :math:`\epsilon_{opt} = \epsilon_{max} / (1 + B_{noise}/B)
    = \epsilon_{max} S/(S+N)`), hence a scale proportional to :math:`\tilde\rho`.

    The reference :math:`\rho_{ref}` makes the configured base lr mean "the lr at the reference
    SNR": either a constant (``rho_ref``) or, when ``rho_ref`` is ``None``, calibrated as
    :math:`\max(\tilde\rho_{\text{ref\_steps}}, 10^{-3})` at the end of the hold period (the floor
    avoids dividing by zero when calibration happened on pure noise). During the first
    ``ref_steps - 1`` steps the scale is 1 while the EMAs fill up.

    Cost per step: two ``torch._foreach`` updates on persistent fp32 buffers (``m``, ``v``: 2x the
    parameter memory), two ``_foreach_norm`` reductions and one device->host sync for the two
    scalars. ``step()`` must be called while ``p.grad`` still holds the step's gradient, i.e.
    before ``optimizer.zero_grad()``; after ``zero_grad(set_to_none=True)`` it raises.

    Attributes (beyond :class:`LRSchedule`): ``last_scale`` (scale applied to the current lr),
    ``last_rho`` (:math:`\tilde\rho_t`, NaN before step 2), ``rho_ref`` (None until calibrated).
    """

    # Floor for a calibrated reference; see class docstring.
    RHO_REF_FLOOR = 1e-3

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base: LRScheduler,
        *,
        total_steps: int,
        beta: float,
        min_scale: float,
        max_scale: float,
        rho_ref: float | None,
        ref_steps: int,
    ) -> None:
        """Set up the EMA buffers (one fp32 pair per parameter); arguments are pre-validated."""
        self.beta = float(beta)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.rho_ref = None if rho_ref is None else float(rho_ref)
        self._fixed_rho_ref = rho_ref is not None
        self.ref_steps = int(ref_steps)
        self.last_rho = math.nan
        self._params: list[torch.Tensor] = [
            p for group in optimizer.param_groups for p in group["params"] if p.requires_grad
        ]
        if not self._params:
            raise ParameterError("scheduler 'snr_adaptive': the optimizer has no trainable parameters")
        # fp32 buffers even for half-precision params: g^2 sums underflow / lose precision in bf16.
        self._m = [torch.zeros_like(p, dtype=_ema_dtype(p), memory_format=torch.preserve_format) for p in self._params]
        self._v = [torch.zeros_like(m) for m in self._m]
        super().__init__(base, total_steps=total_steps)

    def step(self) -> None:
        """Fold the current gradients into the EMAs, update ``last_scale``, advance the base schedule."""
        t = self.last_step + 1  # number of gradients observed after this call
        self._observe_gradients()
        if t >= 2:
            self.last_rho = self._signal_fraction(t)
        if t >= self.ref_steps:
            if self.rho_ref is None:
                # Calibrate once: the base lr is taken to be right for the SNR seen now.
                self.rho_ref = max(self.last_rho, self.RHO_REF_FLOOR)
            self.last_scale = min(max(self.last_rho / self.rho_ref, self.min_scale), self.max_scale)
        super().step()

    def state_dict(self) -> dict[str, Any]:
        """Base state plus EMA buffers, calibrated reference and last rho (exact resume)."""
        state = super().state_dict()
        state.update(
            m=[m.detach().clone() for m in self._m],
            v=[v.detach().clone() for v in self._v],
            rho_ref=self.rho_ref,
            last_rho=self.last_rho,
        )
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (buffers are copied in place, keeping device/dtype)."""
        m, v = state_dict["m"], state_dict["v"]
        if len(m) != len(self._m) or len(v) != len(self._v):
            raise ValueError(
                f"state_dict has EMA buffers for {len(m)} parameters, this optimizer has {len(self._m)}"
            )
        with torch.no_grad():
            for dst, src in zip(self._m + self._v, list(m) + list(v)):
                dst.copy_(src)
        if not self._fixed_rho_ref:
            self.rho_ref = state_dict["rho_ref"]
        self.last_rho = float(state_dict["last_rho"])
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def _observe_gradients(self) -> None:
        """m <- beta m + (1-beta) g ; v <- beta v + (1-beta) g^2, on all parameters at once."""
        beta = self.beta
        with_grad: list[int] = []
        grads: list[torch.Tensor] = []
        for i, p in enumerate(self._params):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError("scheduler 'snr_adaptive' does not support sparse gradients")
            with_grad.append(i)
            # Only low-precision grads are up-cast (allocates); fp32 grads are used in place.
            grads.append(g if g.dtype == self._m[i].dtype else g.to(self._m[i].dtype))
        if not grads:
            raise RuntimeError(
                "scheduler 'snr_adaptive': no parameter has a gradient; call scheduler.step() after "
                "optimizer.step() but before optimizer.zero_grad()"
            )
        m_sub = [self._m[i] for i in with_grad]
        v_sub = [self._v[i] for i in with_grad]
        # lerp_(g, 1-beta) == beta*m + (1-beta)*g in a single fused pass, no temporaries.
        torch._foreach_lerp_(m_sub, grads, 1.0 - beta)
        torch._foreach_mul_(v_sub, beta)
        torch._foreach_addcmul_(v_sub, grads, grads, value=1.0 - beta)
        if len(with_grad) != len(self._params):
            # A missing gradient is a zero gradient: the EMAs only decay.
            seen = set(with_grad)
            rest = [i for i in range(len(self._params)) if i not in seen]
            torch._foreach_mul_([self._m[i] for i in rest], beta)
            torch._foreach_mul_([self._v[i] for i in rest], beta)

    @torch.no_grad()
    def _signal_fraction(self, t: int) -> float:
        """Debiased signal fraction rho~_t from the EMAs (see class docstring); one host sync."""
        beta = self.beta
        m_norms = torch._foreach_norm(self._m)  # ||m_i||_2 per tensor
        v_sums = torch._foreach_norm(self._v, 1)  # v >= 0, so the L1 norm is the sum
        device = m_norms[0].device
        # fp32 sums over per-tensor norms are plenty; float64 is unavailable on some backends (MPS).
        m_sq = torch.stack([n.to(device) for n in m_norms]).float().square().sum()
        v_sum = torch.stack([n.to(device) for n in v_sums]).float().sum()
        m_sq, v_sum = torch.stack([m_sq, v_sum]).tolist()
        bias = 1.0 - beta**t
        # ||m^||^2 / sum v^ = (||m||^2 / bias^2) / (sum v / bias) = ||m||^2 / (sum v * bias)
        rho = m_sq / (v_sum * bias) if v_sum > 0.0 else 0.0
        rho = min(max(rho, 0.0), 1.0)  # the bound holds exactly; clip float round-off
        c = (1.0 - beta) * (1.0 + beta**t) / ((1.0 + beta) * bias)  # E||m^||^2 share of pure noise
        return min(max((rho - c) / (1.0 - c), 0.0), 1.0)


def _ema_dtype(p: torch.Tensor) -> torch.dtype:
    """fp32 for half-precision parameters, the parameter's own dtype otherwise."""
    return torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype
