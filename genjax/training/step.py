"""The generic training core: one pure step, and wrappers applied from outside.

* :func:`make_train_step` turns a loss function and an optax optimizer into a
  pure ``step(state, batch) -> (state, metrics)``. Nothing in it knows the model.
* :func:`make_epoch` wraps any such step into a whole epoch: a shuffled
  permutation, a ``lax.scan`` over batches gathered on the device, the batch
  axis sharded over a device mesh. One compiled program per epoch; no Python
  per batch.

A loss function has the signature::

    loss_fn(params, model_state, batch, key, step) -> (loss, (model_state, metrics))

``model_state`` holds mutable collections (BatchNorm's ``batch_stats``; ``{}``
when there are none); ``metrics`` is a dict of scalars to average per epoch.
Randomness comes from ``fold_in(state.key, state.step)``, so a step's key
depends only on its index: resuming from a checkpoint replays exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from genjax import prng
from genjax.devices import shard_rows

LossFn = Callable[[Any, Any, Any, jax.Array, jax.Array], tuple[jax.Array, tuple[Any, dict]]]
StepFn = Callable[["TrainState", Any], tuple["TrainState", dict]]


@flax.struct.dataclass
class TrainState:
    """Everything a run carries from step to step; a plain pytree (checkpointable, stackable)."""

    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    opt_state: Any
    model_state: Any  # mutable collections, {} when none
    key: jax.Array  # raw uint32 key data (see jax.random.key_data)
    key_impl: str = flax.struct.field(pytree_node=False, default="threefry2x32")

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, key: jax.Array, model_state=None):
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state={} if model_state is None else model_state,
            key=jnp.copy(jax.random.key_data(key)),  # its own buffer: epochs donate the state
            key_impl=str(jax.random.key_impl(key)),
        )

    def step_key(self) -> jax.Array:
        """This step's key: fold_in(run key, step)."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.key, impl=self.key_impl), self.step)


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation) -> StepFn:
    """A pure step: gradient of ``loss_fn`` at ``state.params``, one optax update."""

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (model_state, metrics)), grads = grad_fn(
            state.params, state.model_state, batch, state.step_key(), state.step
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            model_state=model_state,
        )
        return new_state, {"loss": loss, **metrics}

    return step


def num_batches(num_examples: int, batch_size: int) -> int:
    """Batches per epoch: every example once, the last batch padded (see :func:`make_epoch`)."""
    return -(-num_examples // batch_size)


def make_epoch(step: StepFn, batch_size: int, mesh: Mesh, unroll: int = 1, compiler_options: dict | None = None):
    """Wrap ``step`` into ``epoch(state, data, key) -> (state, metrics)``.

    ``data`` is a pytree of device-resident arrays sharing a leading example
    axis (e.g. ``{"image": uint8[N, 28, 28, 1]}``). Each epoch draws a
    permutation from ``key`` and scans ``step`` over ceil(N / batch_size)
    batches, so every example is seen once per epoch. Each batch carries a
    ``"mask"`` (float32, 1 for a real example, 0 for padding): only the last
    batch has padding, and a loss must weight examples by it (see
    :func:`masked_mean`), as a DataLoader's smaller last batch would.

    Each batch is constrained to be split along its example axis over the mesh,
    so XLA runs the step data-parallel and all-reduces the gradients.
    ``metrics`` holds each per-step metric stacked over the epoch.

    ``compiler_options`` (e.g. :func:`fast_compiler_options`) go to ``jax.jit``;
    leave them out when the epoch will be nested in another jit (vmapped K models).
    """
    def epoch(state: TrainState, data, key: jax.Array):
        n = jax.tree_util.tree_leaves(data)[0].shape[0]
        nb = num_batches(n, batch_size)
        order = prng.permutation(key, n)
        # Pad the order with -1 to whole batches; -1 marks padding (gathered as row 0, masked out).
        order = jnp.concatenate([order, jnp.full((nb * batch_size - n,), -1, order.dtype)])

        def body(state, indices):
            batch = jax.tree_util.tree_map(lambda a: a[jnp.maximum(indices, 0)], data)
            batch["mask"] = (indices >= 0).astype(jnp.float32)
            return step(state, shard_rows(batch, mesh))

        return jax.lax.scan(body, state, order.reshape(nb, batch_size), unroll=unroll)

    return jax.jit(epoch, donate_argnums=0, compiler_options=compiler_options)


def fast_compiler_options(mesh: Mesh) -> dict | None:
    """XLA options for the compiled epoch. On the CPU backend, matmuls go to XLA's
    own (Eigen) kernels rather than its experimental YNNPACK fusions, which are
    slower at these sizes (batch 128, widths 200-800): seed002's epoch went from
    about 0.58 s to 0.55 s on the 2-core CI machine in an ad-hoc A/B timing (a noisy,
    few-percent effect). Numerics differ only by summation order."""
    if mesh.devices.flat[0].platform == "cpu":
        return {"xla_cpu_experimental_ynn_fusion_type": ""}
    return None


def epoch_key(run_key: jax.Array, epoch: int) -> jax.Array:
    """The shuffling key of ``epoch``: a function of the run's key and the epoch index only."""
    return jax.random.fold_in(jax.random.fold_in(run_key, 0x5EED), epoch)
