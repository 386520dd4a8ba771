"""The benchmarks' matmul-only floors do the real programs' matmul work: the same FLOPs as the
``dot_general``s of the VAE's training step and of the IWAE evaluation, counted from their jaxprs."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.floors import iwae_floor, vae_epoch_floor
from benchmarks.flops import jaxpr_flops, step_flops
from genjax import vae
from genjax.models.mlp_vae import VAE
from genjax.presets import get_preset, make_optimizer
from genjax.train import TrainState, make_train_step


def _model(preset):
    config = get_preset(preset)
    model = VAE(config.hidden, config.latent_dim, 784, config.activation)
    params = vae.init_params(model, jax.random.key(0, impl=config.prng), (28, 28, 1))
    return config, model, params


@pytest.mark.parametrize("preset", ["seed002", "seed000"])
def test_epoch_floor_does_the_steps_matmul_work(preset):
    config, model, params = _model(preset)
    tx = make_optimizer(config.optimizer, config.lr)
    step = make_train_step(vae.make_vae_loss(model, config.likelihood, config.pixels), tx)
    state = TrainState.create(params, tx, jax.random.key(1, impl=config.prng))
    batch = {"image": jnp.zeros((config.batch_size, 28, 28, 1), jnp.uint8), "mask": jnp.ones((config.batch_size,))}
    _, _, floor_flops = vae_epoch_floor(config.hidden, config.latent_dim, steps=3, batch=config.batch_size)
    assert floor_flops == pytest.approx(3 * step_flops(step, state, batch), rel=1e-12)


def test_iwae_floor_does_the_evaluations_matmul_work():
    config, model, params = _model("seed002")
    images, k, chunk = 7, 10, 3  # the last chunk is padded, in both
    x = jnp.zeros((images, 28, 28, 1))
    jaxpr = jax.make_jaxpr(lambda p, x: vae.iwae_nll(model, p, x, jax.random.key(2), k, chunk))(params, x).jaxpr
    _, _, floor_flops = iwae_floor(config.hidden, config.latent_dim, images, k, chunk)
    assert floor_flops == pytest.approx(jaxpr_flops(jaxpr), rel=1e-12)
