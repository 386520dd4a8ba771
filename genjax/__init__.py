"""genjax: classic image generative models as clean, fast, functional JAX/Flax code.

The pipeline, one module each: ``data`` -> ``models`` -> ``losses`` -> ``train``
(a pure step and its epoch/sharding wrappers) -> ``fit`` (the epoch loop with
checkpoints) -> ``vae`` (objective and evaluation) -> ``plots``.
"""

__version__ = "0.1.0"
