"""Checkpoints with orbax: the train state (any pytree) plus JSON metadata, per epoch.

Orbax writes each step into a temporary directory and renames it when complete,
so a run killed mid-save leaves the previous checkpoint intact. The metadata
carries what a resumed run must agree on (the config) and what it must continue
(the per-epoch history).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

logging.getLogger("absl").setLevel(logging.ERROR)


class Checkpointer:
    """Keeps the last ``max_to_keep`` epochs of a run in ``directory``."""

    def __init__(self, directory: Path, max_to_keep: int = 2, asynchronous: bool = True):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=asynchronous
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def save(self, epoch: int, state: Any, meta: dict) -> None:
        """Save ``state`` after ``epoch`` (1-based); returns at once when asynchronous.

        ``meta`` is copied now (as JSON), before the call returns: orbax serializes it
        later in a background thread, and the caller may change it meanwhile (``fit``
        appends the next epoch's history row to the same list)."""
        meta = json.loads(json.dumps(meta))
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(epoch, args=args)

    def restore(self, like: Any, epoch: int | None = None) -> tuple[Any, dict]:
        """(state, meta) of ``epoch`` (default: the latest), shaped and placed like ``like``."""
        epoch = self.latest_epoch() if epoch is None else epoch
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        restored = self._manager.restore(epoch, args=args)
        return restored["state"], restored["meta"]

    def read_meta(self, epoch: int | None = None) -> dict:
        epoch = self.latest_epoch() if epoch is None else epoch
        return self._manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

