"""Second names for forwards and rules: the names people type from other libraries and papers.

An alias is the same entry under another name (same parameters, same Hydra option; the pair
describes itself by the canonical name). Unknown-name errors suggest aliases too.
"""
from __future__ import annotations

from .definitions import FORWARDS, RULES, register_alias

FORWARD_ALIASES = {
    "swish": "silu",        # Ramachandran et al. 2017 (swish with beta)
    "logistic": "sigmoid",  # FreeGrad's "Logistic"
    "heaviside": "step",    # snnTorch / FreeGrad "Heaviside"
    "linear": "identity",   # FreeGrad's "Linear"
}

RULE_ALIASES = {
    "tied": "exact",                          # FreeGrad / Troiano et al.: the tied (true) derivative
    "straight_through_estimator": "ste",      # snnTorch's straight_through_estimator
    "deterministic_pass": "ste",              # SpikingJelly's DeterministicPass
    "gaussian": "erf",                        # the Gaussian bump (docs/DESIGN.md: "erf / gaussian")
}

for _alias, _target in FORWARD_ALIASES.items():
    register_alias(FORWARDS, _alias, _target)
for _alias, _target in RULE_ALIASES.items():
    register_alias(RULES, _alias, _target)
