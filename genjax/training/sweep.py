r"""K models in one compiled program: ``jax.vmap`` over stacked states, on shared batches.

A :class:`Sweep` is K :class:`~genjax.training.step.TrainState`\ s stacked on a leading
axis, with each model's scalar hyperparameters (learning rate, \beta, KL warm-up,
noise level ...) beside them, also stacked. :func:`make_sweep_step` turns a
family of steps, ``make_step(hp) -> step`` (e.g. :func:`genjax.recipes.vae.make_vae_step`),
into one ``step(sweep, batch) -> (sweep, metrics)`` that runs the K steps as one
vmapped program on the same batch; :func:`genjax.training.step.make_epoch`, :func:`genjax.runs.fit.fit`
and the checkpointer take it unchanged, so a sweep is sharded over the mesh,
checkpointed and resumed exactly like one model.

* Each model's randomness is its own: every draw goes through :mod:`genjax.prng`,
  which keeps ``vmap`` over keys per-key for every key implementation (the
  presets' ``rbg`` included), so model k draws what it would draw alone.
* The metrics are per model, ``{name}_{k}`` (what :func:`genjax.runs.fit.fit` writes as
  ``train_{name}_{k}`` columns), never averaged over models; ``loss`` is the mean
  over the models still training (what ``fit`` checks and shows) and ``alive``
  their number.
* A model whose loss turns non-finite is marked dead from that step on (its
  metrics read NaN; ``Sweep.alive`` says which): nothing in a vmapped program mixes
  models, so the others' results are exactly those of a sweep without it. The run
  stops only when every model is dead.
* :func:`member` takes model k out as a plain ``TrainState``: it continues alone
  exactly as it would have continued in the sweep.

Models with different shapes (latent size, widths) cannot share a vmapped
program; :func:`groups` splits a list of configs into groups of equal static
settings, each trained as its own sweep.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from genjax.training.step import StepFn, TrainState


@flax.struct.dataclass
class Sweep:
    """K training states and their hyperparameters, every leaf stacked on axis 0."""

    models: TrainState
    hparams: dict  # name -> float32[K]
    alive: jax.Array  # bool[K]: False from the step a model's loss was non-finite

    @property
    def step(self) -> jax.Array:
        """Steps taken (every model takes every step)."""
        return self.models.step[0]

    @property
    def size(self) -> int:
        return self.alive.shape[0]


def stack(states: Sequence[TrainState], hparams: Sequence[dict]) -> Sweep:
    """One :class:`Sweep` of ``states`` (same structure and shapes) with per-model ``hparams``
    (dicts with the same keys). Each leaf is a fresh buffer (epochs donate their state)."""
    if len(states) != len(hparams) or not states:
        raise ValueError("stack needs one hyperparameter dict per state, and at least one state")
    models = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    hp = {k: jnp.asarray([h[k] for h in hparams], jnp.float32) for k in hparams[0]}
    return Sweep(models=models, hparams=hp, alive=jnp.ones(len(states), bool))


def member(sweep: Sweep, k: int) -> TrainState:
    """Model ``k`` of the sweep as a plain ``TrainState`` (host copy)."""
    return jax.tree.map(lambda a: np.array(a[k]), jax.device_get(sweep.models))


def member_hparams(sweep: Sweep, k: int) -> dict:
    """Model ``k``'s hyperparameters as Python floats."""
    return {name: float(v[k]) for name, v in jax.device_get(sweep.hparams).items()}


def make_sweep_step(make_step: Callable[[dict], StepFn]) -> Callable[[Sweep, Any], tuple[Sweep, dict]]:
    """``step(sweep, batch)``: ``make_step(hp_k)(state_k, batch)`` for every model k at once."""

    def step(sweep: Sweep, batch) -> tuple[Sweep, dict]:
        models, metrics = jax.vmap(lambda s, hp: make_step(hp)(s, batch))(sweep.models, sweep.hparams)
        alive = sweep.alive & jnp.isfinite(metrics["loss"])
        out = {f"{name}_{k}": jnp.where(alive[k], v[k], jnp.nan)
               for name, v in metrics.items() for k in range(sweep.size)}
        n_alive = jnp.sum(alive)
        out["loss"] = jnp.where(n_alive > 0, jnp.sum(jnp.where(alive, metrics["loss"], 0.0)) / jnp.maximum(n_alive, 1),
                                jnp.nan)
        out["alive"] = n_alive.astype(jnp.float32)
        return sweep.replace(models=models, alive=alive), out

    return step


def per_model(values: dict, size: int) -> dict:
    """``{name: array[K]}`` -> ``{f"{name}_{k}": float}``: the flat scalars ``fit`` records."""
    values = jax.device_get(values)
    return {f"{name}_{k}": float(v[k]) for name, v in values.items() for k in range(size)}


def model_rows(row: dict, size: int) -> list[dict]:
    """One history row of a sweep split into K rows without the ``_{k}`` suffixes."""
    rows = [{} for _ in range(size)]
    for key, value in row.items():
        name, _, k = key.rpartition("_")
        if name and k.isdigit() and int(k) < size:
            rows[int(k)][name] = value
        else:
            for r in rows:
                r.setdefault(key, value)
    return rows


def groups(configs: Iterable, varying: Sequence[str]) -> list[list[int]]:
    """Indices of ``configs`` (dataclasses) grouped by every field not in ``varying``:
    each group can be one vmapped program (same shapes, same static choices), in the
    order first seen."""
    out: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        static = tuple((f.name, getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in varying)
        out.setdefault(static, []).append(i)
    return list(out.values())


__all__ = ["Sweep", "groups", "make_sweep_step", "member", "member_hparams", "model_rows", "per_model", "stack"]
