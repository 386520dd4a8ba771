r"""The GAN family's models and objectives: G and D of a config, sampling G, and the test
metrics of a trained pair. The losses are :func:`genjax.objectives.losses.discriminator_loss` and the
generator losses of :data:`GENERATOR_LOSSES`; the alternating training step that minimizes them is
:mod:`genjax.training.adversarial`.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import prng
from genjax.devices import map_in_chunks
from genjax.models.dcgan import DCDiscriminator, DCGenerator
from genjax.models.mlp_gan import MLPDiscriminator, MLPGenerator
from genjax.objectives import losses

GENERATOR_LOSSES = {"non_saturating": losses.generator_loss_non_saturating,
                    "saturating": losses.generator_loss_saturating}


def build_models(config, image_shape: tuple[int, int, int] = (28, 28, 1)) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a :class:`genjax.presets.GANConfig` for images of ``image_shape``: the MLP pair
    (any size), or the DCGAN (28 x 28, any channels) with D's ``d_norm``."""
    if config.model == "dcgan":
        return (DCGenerator(config.hidden, channels=int(image_shape[-1]), hidden=config.fc_hidden),
                DCDiscriminator(config.hidden, config.d_norm, hidden=config.fc_hidden))
    return MLPGenerator(config.hidden, tuple(int(n) for n in image_shape)), MLPDiscriminator(config.hidden)


def generator_variables(state) -> dict:
    """G's Flax variables (parameters and, with BatchNorm, its running statistics)."""
    return {"params": state.params["gen"], **state.model_state.get("gen", {})}


@functools.partial(jax.jit, static_argnames=("gen", "chunk"))
def generate(gen: nn.Module, variables: dict, z: jax.Array, chunk: int = 1000) -> jax.Array:
    """G(z) in evaluation mode (BatchNorm's running statistics), in chunks: images in [0, 1]."""
    return map_in_chunks(lambda zc: gen.apply(variables, zc, train=False), z, chunk)


def sample(gen: nn.Module, variables: dict, key: jax.Array, n: int, latent_dim: int) -> jax.Array:
    """``n`` images G(z), z ~ N(0, I) drawn from ``key``."""
    return generate(gen, variables, prng.normal(key, (n, latent_dim)))


@functools.partial(jax.jit, static_argnames=("gen", "disc", "latent_dim"))
def evaluate(gen: nn.Module, disc: nn.Module, state, x_test: jax.Array, key: jax.Array,
             latent_dim: int) -> dict[str, Any]:
    """D and G on the test set against as many samples of G (evaluation mode) drawn from ``key``:
    ``d_loss``, ``g_loss`` (non-saturating), ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)).
    D judges 1,000-image chunks (a BatchNorm D by each chunk's statistics)."""
    fake = generate(gen, generator_variables(state), prng.normal(key, (x_test.shape[0], latent_dim)))
    d = lambda x: map_in_chunks(lambda c: disc.apply({"params": state.params["disc"]}, c), x, 1000)  # noqa: E731
    real_logits, fake_logits = d(x_test), d(fake)
    d_loss = jnp.mean(losses.discriminator_loss(real_logits, fake_logits))
    return {"loss": d_loss, "d_loss": d_loss, "g_loss": jnp.mean(losses.generator_loss_non_saturating(fake_logits)),
            "d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
