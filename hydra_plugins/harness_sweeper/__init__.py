"""Hydra discovers sweepers only inside the `hydra_plugins` namespace: this registers ours."""
