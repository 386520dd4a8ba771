r"""VAE sweeps: K VAE configs that differ only in hyperparameters or seed, as one vmapped program.

Model k of a sweep is the run ``python -m experiments.vae_mnist`` makes from config
k: the same initial parameters, step keys and evaluation keys (all from its seed,
:func:`genjax.prng.run_keys`), the same step with its own learning rate, \beta and KL
warm-up (:func:`genjax.vae.make_vae_step`). What the K models share is the order
of the batches (drawn from the sweep's own seed): a vmapped program trains all of
them on the same batch at each step. Configs that differ in anything else (latent
size, widths, likelihood) are split into groups by :func:`genjax.sweep.groups`.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng, sweep, vae
from genjax.models.mlp_vae import VAE
from genjax.presets import make_optimizer
from genjax.train import TrainState, fast_compiler_options, make_epoch

VARYING = (*vae.HYPERPARAMETERS, "seed")  # what may differ inside one vmapped group


def init_sweep(model: VAE, configs: Sequence, image_shape) -> sweep.Sweep:
    """The stacked initial states of ``configs`` (one group), each from its own seed's keys."""
    states = []
    for c in configs:
        keys = prng.run_keys(c.seed, c.prng, vae.KEY_NAMES)
        params = vae.init_params(model, keys["init"], image_shape)
        states.append(TrainState.create(params, make_optimizer(c.optimizer, c.lr), keys["state"]))
    return sweep.stack(states, [vae.hyperparameters(c) for c in configs])


def make_sweep_epoch(model: VAE, config, steps_per_epoch: int, mesh):
    """The compiled epoch of a group whose static settings are ``config``'s."""
    step_for = vae.make_vae_step(model, config.likelihood, config.pixels, config.optimizer, steps_per_epoch)
    return make_epoch(sweep.make_sweep_step(step_for), config.batch_size, mesh,
                      compiler_options=fast_compiler_options(mesh))


def eval_keys(configs: Sequence, name: str = "eval") -> jax.Array:
    """Each model's ``name`` key (``eval``, ``draw``), stacked."""
    return jnp.stack([prng.run_keys(c.seed, c.prng, vae.KEY_NAMES)[name] for c in configs])


def make_evaluate(model: VAE, configs: Sequence, x_test: jax.Array, mesh):
    """``evaluate(sweep) -> {metric_k: float}``: every model's test recon, KL, loss at its
    \beta and (for a likelihood) -ELBO, each with its own evaluation key."""
    config = configs[0]
    likelihood = vae.reports_likelihood(config.likelihood, config.pixels)
    keys = eval_keys(configs)
    betas = jnp.asarray([c.beta for c in configs], jnp.float32)

    @jax.jit
    def per_model(params):
        m = jax.vmap(lambda p, k: vae.evaluate(model, p, x_test, k, config.likelihood, mesh=mesh))(params, keys)
        out = {"loss": m["recon"] + betas * m["kl"], "recon": m["recon"], "kl": m["kl"]}
        return {**out, "neg_elbo": m["neg_elbo"]} if likelihood else out

    return lambda s: sweep.per_model(per_model(s.models.params), len(configs))


def final_metrics(model: VAE, s: sweep.Sweep, configs: Sequence, x_test: jax.Array, iwae_k: int, mesh) -> list[dict]:
    """Per model, beyond the history: the IWAE bound (likelihood models), active units
    (:func:`genjax.vae.active_units`) and the squared error of the reconstruction means,
    a scale every decoder shares. Dead models get None."""
    likelihood = vae.reports_likelihood(configs[0].likelihood, configs[0].pixels)
    alive = np.asarray(jax.device_get(s.alive))
    out = []
    for k, c in enumerate(configs):
        if not alive[k]:
            out.append({"active_units": None, "recon_mse": None, **({"nll_iwae": None} if likelihood else {})})
            continue
        params = jax.tree.map(lambda a: a[k], s.models.params)
        keys = prng.run_keys(c.seed, c.prng, vae.KEY_NAMES)
        row = {"active_units": int(vae.active_units(vae.encode_means(model, params, x_test))),
               "recon_mse": float(vae.evaluate(model, params, x_test, keys["eval"], "mse", mesh=mesh)["recon"])}
        if likelihood:
            iw = vae.iwae_nll(model, params, x_test, jax.random.fold_in(keys["eval"], 1), iwae_k,
                              vae.iwae_chunk_size(iwae_k, x_test[0].size), mesh)
            row["nll_iwae"] = float(iw["nll_iwae"])
        out.append(row)
    return out


def prior_samples(model: VAE, s: sweep.Sweep, configs: Sequence, n: int, image_shape) -> list[np.ndarray]:
    """Each model's ``n`` prior sample means (n, H, W), from its own draw key."""
    out = []
    for k, c in enumerate(configs):
        key = jax.random.split(prng.run_keys(c.seed, c.prng, vae.KEY_NAMES)["draw"])[0]  # vae_mnist's samples.npy key
        means = vae.prior_sample_means(model, jax.tree.map(lambda a: a[k], s.models.params), key, n)
        out.append(np.asarray(means).reshape(n, *image_shape[:2]))
    return out


__all__ = ["VARYING", "eval_keys", "final_metrics", "init_sweep", "make_evaluate",
           "make_sweep_epoch", "prior_samples"]
