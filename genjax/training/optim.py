"""The optimizers of the seeds, as optax transformations."""

from __future__ import annotations

import optax

from genjax.errors import UsageError


def make_optimizer(name: str, lr: float, b1: float = 0.9) -> optax.GradientTransformation:
    """PyTorch's defaults: Adam(betas=(b1, 0.999), eps=1e-8), b1 = 0.9 unless given (DCGAN: 0.5);
    AdamW adds weight_decay=0.01."""
    if name == "adam":
        return optax.adam(lr, b1=b1, b2=0.999, eps=1e-8)
    if name == "adamw":
        return optax.adamw(lr, b1=b1, b2=0.999, eps=1e-8, weight_decay=0.01)
    raise UsageError(f"unknown optimizer {name!r}: choose adam or adamw")
