r"""K VAEs as one vmapped program: :meth:`genjax.VAE.fit_many` and the ablation studies.

    vaes = genjax.VAE.fit_many([genjax.VAE(beta=b) for b in (0.5, 1, 2, 4)], images, epochs=5)

Model k of a sweep is the model :meth:`genjax.VAE.fit` makes from recipe k: the same initial
parameters, step keys and evaluation keys (all from its seed, :func:`genjax.prng.run_keys`),
the same step with its own learning rate, \beta and KL warm-up (:func:`genjax.recipes.vae.make_vae_step`),
the same test metrics (:meth:`genjax.recipes.vae.VAE.test_metrics`, vmapped). What the K models
share is the order of the batches (drawn from the first recipe's run key, or ``run_key``): one
vmapped program trains all of them on the same batch at each step. Recipes that differ in
anything else (latent size, widths, likelihood) are split into groups
(:func:`genjax.training.sweep.groups`), each its own program.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.devices import data_mesh, replicate
from genjax.objectives import losses, vae
from genjax.recipes.base import Prepared
from genjax.recipes.vae import HYPERPARAMETERS, VAE, hyperparameters
from genjax.runs.fit import fit as fit_epochs
from genjax.training import sweep
from genjax.training.step import fast_compiler_options, make_epoch

VARYING = (*HYPERPARAMETERS, "seed")  # what may differ inside one vmapped group


def make_evaluate(members: Sequence[VAE], test: data.ImageSet | None, mesh, steps_per_epoch: int = 1):
    """``evaluate(sweep) -> {metric_k: float}``: each model's test metrics at its own \beta and KL
    weight, with its own evaluation key (:meth:`genjax.recipes.vae.VAE.test_metrics`, vmapped)."""
    if test is None:
        return lambda s: {}
    first = members[0]
    x_test, cond = replicate(first.eval_arrays(test), mesh)
    metrics = first.test_metrics(x_test, cond, mesh, objective=any(m.config.kl_warmup_epochs > 0 for m in members))
    keys = jnp.stack([m.keys()["eval"] for m in members])
    betas = jnp.asarray([m.config.beta for m in members], jnp.float32)
    warmups = jnp.asarray([m.config.kl_warmup_epochs for m in members], jnp.float32)

    @jax.jit
    def per_model(params, model_state, step):
        weights = jax.vmap(lambda b, w: losses.kl_weight((step - 1) // steps_per_epoch, b, w))(betas, warmups)
        return jax.vmap(metrics)(params, model_state, keys, betas, weights)

    return lambda s: sweep.per_model(per_model(s.models.params, s.models.model_state, s.step), len(members))


def prepare_group(members: Sequence[VAE], train: data.ImageSet, mesh=None) -> Prepared:
    """One group's compiled epoch (:meth:`genjax.recipes.base.Recipe.prepare`, for K models): the
    stacked initial states, each from its own seed, and the vmapped step at each one's hyperparameters.
    The benchmarks time this; :func:`train_many` loops over it."""
    first, mesh, train_data, steps = members[0].place_data(train, mesh)
    members = [m.with_image_shape(first.image_shape) for m in members]
    state = replicate(sweep.stack([m.init_state() for m in members], [hyperparameters(m.config) for m in members]),
                      mesh)
    epoch_fn = make_epoch(sweep.make_sweep_step(first.step_for(steps)), first.config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    return Prepared(first, mesh, state, epoch_fn, train_data, first.keys()["run"], steps)


def train_many(recipes: Sequence[VAE], train: data.ImageSet, test: data.ImageSet | None = None, run=None,
               mesh=None, run_key: jax.Array | None = None, progress: bool = True) -> list[VAE]:
    """Train ``recipes`` on ``train``, each group of equal static settings as one vmapped program
    (checkpointed into ``run``'s directory as ``sweep/``, or ``group_G/`` for several groups).
    Returns the trained recipes in the order given; a model whose loss turned non-finite keeps
    NaN parameters and its history says from which epoch."""
    mesh = data_mesh() if mesh is None else mesh
    shaped = [r.with_image_shape(train.images.shape[1:]) for r in recipes]
    run_key = shaped[0].keys()["run"] if run_key is None else run_key
    groups = sweep.groups([r.config for r in shaped], VARYING)
    trained: list[VAE | None] = [None] * len(shaped)
    for g, group in enumerate(groups):
        members = [shaped[i] for i in group]
        p = prepare_group(members, train, mesh)
        evaluate = make_evaluate(members, test, mesh, p.steps_per_epoch)
        if run is None:
            state, history = fit_epochs(p.state, p.epoch_fn, p.train_data, run_key, members[0].config.epochs,
                                        evaluate, progress=progress)
        else:
            state, history = run.fit(p.state, p.epoch_fn, p.train_data, run_key, evaluate, p.steps_per_epoch,
                                     name=f"group_{g}" if len(groups) > 1 else "sweep")
        for j, i in enumerate(group):
            rows = [sweep.model_rows(row, len(group))[j] for row in history]
            trained[i] = members[j]._replace(state=sweep.member(state, j), history=rows)
    return trained


def diverged_epoch(recipe: VAE) -> int | None:
    """The first epoch whose training loss was non-finite (None for a model that trained through)."""
    dead = [row["epoch"] for row in recipe.history if not np.isfinite(row.get("train_loss", 0.0))]
    return dead[0] if dead else None


def final_metrics(recipe: VAE, test: data.ImageSet, mesh=None) -> dict:
    """Beyond a model's history: its IWAE bound (likelihood models) and active units
    (:func:`genjax.objectives.vae.active_units`); None for a model that diverged."""
    likelihood = recipe.reports_likelihood
    if diverged_epoch(recipe) is not None:
        return {"active_units": None, **({"nll_iwae": None} if likelihood else {})}
    x_test, cond = recipe.eval_arrays(test)
    row = {"active_units": int(vae.active_units(jnp.asarray(recipe.encode(test.images))))}
    if likelihood:
        row["nll_iwae"] = float(recipe.iwae_bound(x_test, cond, mesh=mesh)["nll_iwae"])
    return row


__all__ = ["VARYING", "diverged_epoch", "final_metrics", "make_evaluate", "prepare_group",
           "train_many"]
