"""Training: one pure step ``step(state, batch) -> (state, metrics)`` and the wrappers applied
from outside (``step``: the state, the step, the compiled and sharded epoch; ``sweep``: K models
as one vmapped step; ``adversarial``: the GAN's two-player step; ``optim``: the seeds' optimizers)."""
