r"""The GAN's training step: a generator G and a discriminator D updated in turn, in one jitted step
(their models and losses: :mod:`genjax.objectives.gan`).

Per step, on a batch x of real images and fresh noise z ~ N(0, I):

1. D's update on  L_D = E_x[BCE(D(x), 1)] + E_z[BCE(D(sg(G(z))), 0)]  (sg: stop-gradient,
   G is not moved by D's loss; :func:`genjax.objectives.losses.discriminator_loss`);
2. G's update against the *updated* D on  L_G = E_z[-\log D(G(z))]  (non-saturating, the
   seed's) or  E_z[\log(1 - D(G(z)))]  (saturating minimax), with new noise.

Both are averaged over the batch's real examples (``batch["mask"]``): the last,
padded batch of an epoch counts as many generated as real images, like the
seed's smaller last DataLoader batch. G's BatchNorm (DCGAN) uses batch statistics
in both passes; the running statistics are updated by G's pass and used to sample.
D's BatchNorm (DCGAN, ``d_norm="batch"``) normalizes each batch it judges by that
batch's statistics (the real and the generated batch apart, as PyTorch's DCGAN loop
does; padded rows left out); it keeps no running averages.

``d_grad_leak`` reproduces the seed's loop as written: it never clears D's
gradients after G's backward pass, so \nabla_D L_G (taken at the updated D) adds
into D's next gradient. It is carried from step to step in ``model_state``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from genjax import prng
from genjax.data import to_pixels
from genjax.objectives import losses
from genjax.objectives.gan import GENERATOR_LOSSES
from genjax.objectives.losses import masked_mean
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState


def build_optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(G's, D's) optimizers of a :class:`genjax.presets.GANConfig`: the same kind and beta1, D at
    ``lr`` and G at ``g_lr`` (``lr`` when unset)."""
    return (make_optimizer(config.optimizer, config.g_lr or config.lr, config.b1),
            make_optimizer(config.optimizer, config.lr, config.b1))


def init_state(gen: nn.Module, disc: nn.Module, tx_g: optax.GradientTransformation,
               tx_d: optax.GradientTransformation, key: jax.Array, latent_dim: int,
               image_shape: tuple[int, ...], d_grad_leak: bool = False) -> TrainState:
    """A :class:`~genjax.training.step.TrainState` with params and opt_state ``{"gen", "disc"}``; G's
    mutable collections (if any) in ``model_state["gen"]``; the run key from ``key``."""
    k_gen, k_disc, k_state = jax.random.split(key, 3)
    g_vars = gen.init(k_gen, jnp.zeros((1, latent_dim)))
    d_params = disc.init(k_disc, jnp.zeros((1, *image_shape)))["params"]
    g_params = g_vars["params"]
    model_state = {"gen": {k: v for k, v in g_vars.items() if k != "params"}} if len(g_vars) > 1 else {}
    if d_grad_leak:
        model_state["d_grad_leak"] = jax.tree.map(jnp.zeros_like, d_params)
    return TrainState(step=jnp.zeros((), jnp.int32), params={"gen": g_params, "disc": d_params},
                      opt_state={"gen": tx_g.init(g_params), "disc": tx_d.init(d_params)},
                      model_state=model_state, key=jnp.copy(jax.random.key_data(k_state)),
                      key_impl=str(jax.random.key_impl(k_state)))


def _generate_train(gen: nn.Module, g_params, g_stats: dict, z: jax.Array, mask: jax.Array | None):
    """(G(z) in training mode, G's updated mutable collections); batch statistics over ``mask``'s rows."""
    if not g_stats:
        return gen.apply({"params": g_params}, z, train=True), g_stats
    return gen.apply({"params": g_params, **g_stats}, z, train=True, mask=mask, mutable=list(g_stats))


def make_d_update(gen: nn.Module, disc: nn.Module, tx_d: optax.GradientTransformation, latent_dim: int,
                  d_grad_leak: bool = False):
    """``d_update(state, batch, key) -> (state, metrics)``: one optax update of D on L_D, with
    G(z) (z ~ N(0, I) from ``key``) held fixed; G's parameters and statistics are not touched.
    Metrics: ``d_loss``, ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)), before the update."""

    def d_update(state: TrainState, batch, key: jax.Array) -> tuple[TrainState, dict]:
        real = to_pixels(batch["image"], "float")
        z = prng.normal(key, (real.shape[0], latent_dim))
        fake = jax.lax.stop_gradient(_generate_train(gen, state.params["gen"], state.model_state.get("gen", {}),
                                                     z, batch.get("mask"))[0])

        def d_loss_fn(d_params):
            mask = batch.get("mask")  # real and generated batches are judged apart, as in PyTorch's loop
            real_logits = disc.apply({"params": d_params}, real, mask)
            fake_logits = disc.apply({"params": d_params}, fake, mask)
            loss = masked_mean(losses.discriminator_loss(real_logits, fake_logits), batch)
            return loss, {"d_loss": loss, "d_real": masked_mean(jax.nn.sigmoid(real_logits), batch),
                          "d_fake": masked_mean(jax.nn.sigmoid(fake_logits), batch)}

        (_, metrics), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.params["disc"])
        if d_grad_leak:
            grads = jax.tree.map(jnp.add, grads, state.model_state["d_grad_leak"])
        updates, d_opt = tx_d.update(grads, state.opt_state["disc"], state.params["disc"])
        return state.replace(params={**state.params, "disc": optax.apply_updates(state.params["disc"], updates)},
                             opt_state={**state.opt_state, "disc": d_opt}), metrics

    return d_update


def make_g_update(gen: nn.Module, disc: nn.Module, tx_g: optax.GradientTransformation, latent_dim: int,
                  g_loss: str = "non_saturating", d_grad_leak: bool = False):
    """``g_update(state, batch, key) -> (state, metrics)``: one optax update of G on L_G against
    the current D (not moved), z ~ N(0, I) from ``key``, as many as ``batch`` has rows; G's
    BatchNorm statistics are updated. With ``d_grad_leak``, \nabla_D L_G goes to
    ``model_state["d_grad_leak"]``. Metrics: ``g_loss``."""
    generator_loss = GENERATOR_LOSSES[g_loss]

    def g_update(state: TrainState, batch, key: jax.Array) -> tuple[TrainState, dict]:
        z = prng.normal(key, (batch["image"].shape[0], latent_dim))

        def g_loss_fn(g_params, d_params):
            images, stats = _generate_train(gen, g_params, state.model_state.get("gen", {}), z, batch.get("mask"))
            logits = disc.apply({"params": d_params}, images, batch.get("mask"))
            return masked_mean(generator_loss(logits), batch), stats

        argnums = (0, 1) if d_grad_leak else 0
        (loss, stats), grads = jax.value_and_grad(g_loss_fn, argnums, has_aux=True)(
            state.params["gen"], state.params["disc"])
        g_grads = grads[0] if d_grad_leak else grads
        updates, g_opt = tx_g.update(g_grads, state.opt_state["gen"], state.params["gen"])
        model_state = dict(state.model_state)
        if stats:
            model_state["gen"] = stats
        if d_grad_leak:
            model_state["d_grad_leak"] = grads[1]
        return state.replace(params={**state.params, "gen": optax.apply_updates(state.params["gen"], updates)},
                             opt_state={**state.opt_state, "gen": g_opt}, model_state=model_state), {"g_loss": loss}

    return g_update


def make_gan_step(gen: nn.Module, disc: nn.Module, tx_g: optax.GradientTransformation,
                  tx_d: optax.GradientTransformation, latent_dim: int, g_loss: str = "non_saturating",
                  d_grad_leak: bool = False):
    """A pure ``step(state, batch) -> (state, metrics)`` for :func:`genjax.training.step.make_epoch`:
    :func:`make_d_update`, then :func:`make_g_update` against the updated D, each with its
    own key from ``state.step_key()``; ``state.step`` advances by one. Metrics: ``d_loss``,
    ``g_loss``, ``d_real``, ``d_fake`` and ``loss`` = d_loss + g_loss (checked for NaN by ``fit``)."""
    d_update = make_d_update(gen, disc, tx_d, latent_dim, d_grad_leak)
    g_update = make_g_update(gen, disc, tx_g, latent_dim, g_loss, d_grad_leak)

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        k_d, k_g = jax.random.split(state.step_key())
        state, d_metrics = d_update(state, batch, k_d)
        state, g_metrics = g_update(state, batch, k_g)
        metrics = {**d_metrics, **g_metrics}
        return state.replace(step=state.step + 1), {"loss": metrics["d_loss"] + metrics["g_loss"], **metrics}

    return step
