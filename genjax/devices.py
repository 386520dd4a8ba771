"""Devices: the mesh every array is sharded over, and running a function over the rows of
an array in chunks split across it. Below every other layer of the library (the objectives'
evaluations, the training epoch and the run lifecycle all use it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

BATCH_AXIS = "batch"


def is_main_process() -> bool:
    """True on the one process that writes files (process 0; always, on a single host)."""
    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Wait until every process reaches this point (multi-host runs; free on one host)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over all devices (all hosts' in a multi-host run), axis ``batch``."""
    devices = jax.devices() if devices is None else devices
    return Mesh(devices, (BATCH_AXIS,))


def replicate(tree, mesh: Mesh):
    """Place a pytree on every device of ``mesh`` (params, optimizer state, the dataset)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_rows(tree, mesh: Mesh | None):
    """Constrain every leaf's leading (example) axis to be split over the mesh's
    ``batch`` axis, inside a jitted function; a no-op without a mesh."""
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, P(BATCH_AXIS)))


def pad_rows(a: jax.Array, rows: int) -> jax.Array:
    """``a`` with its first row repeated at the end to ``rows`` rows (a fixed shape, one compiled
    program; the caller drops the padding's outputs)."""
    extra = rows - a.shape[0]
    return jnp.concatenate([a, jnp.repeat(a[:1], extra, axis=0)]) if extra else a


def mesh_chunk(chunk: int, mesh: Mesh | None) -> int:
    """``chunk`` rounded up to a multiple of the ``mesh``'s device count (each device an equal
    share of every chunk); ``chunk`` itself without a mesh."""
    return chunk if mesh is None else -(-chunk // mesh.size) * mesh.size


def map_in_chunks(fn, args, chunk: int, mesh=None):
    """``fn`` over the leading axis of the pytree ``args`` in chunks of ``chunk`` rows
    (``lax.map``: one compiled loop, bounded memory). With a ``mesh``, each chunk
    is split over its devices (the chunk is rounded up to a multiple of their
    number). Rows padded to fill the last chunk are dropped from the output."""
    n = jax.tree_util.tree_leaves(args)[0].shape[0]
    chunk = mesh_chunk(min(chunk, n), mesh)
    padded = n + (-n) % chunk

    def split(a):
        return pad_rows(a, padded).reshape(-1, chunk, *a.shape[1:])

    out = jax.lax.map(lambda a: fn(shard_rows(a, mesh)), jax.tree_util.tree_map(split, args))
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:n], out)


def map_in_parts(fn, args, part: int, progress: bool = False, desc: str = ""):
    """``fn`` over the leading axis of the pytree ``args`` in host-level calls of ``part`` rows, the
    last padded to the same shape (one compiled program), with a progress bar and its ETA on the
    main process; the outputs' leading axes concatenated on the host (NumPy), padding dropped.
    For long evaluations (the IWAE) that :func:`map_in_chunks` alone would run without a word."""
    n = jax.tree_util.tree_leaves(args)[0].shape[0]
    part = max(1, min(part, n))
    outs = []
    with tqdm(total=n, desc=desc, unit="images", disable=not (progress and is_main_process())) as bar:
        for start in range(0, n, part):
            rows = min(part, n - start)

            out = jax.device_get(fn(*jax.tree_util.tree_map(lambda a, s=start: pad_rows(a[s:s + rows], part), args)))
            outs.append(jax.tree_util.tree_map(lambda o, rows=rows: np.asarray(o)[:rows], out))
            bar.update(rows)
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *outs)
