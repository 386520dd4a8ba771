"""The epoch loop around a compiled epoch: timing, evaluation, history, checkpoints.

Model-agnostic: it sees a :class:`~genjax.training.step.TrainState`, a compiled
``epoch(state, data, key)`` from :func:`genjax.training.step.make_epoch`, and an
``evaluate(state) -> dict`` callback. After each epoch it appends a history row,
checkpoints (orbax, atomic) and rewrites ``history.csv``. A non-finite training
loss stops the run before that epoch is saved, so the last checkpoint is good.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from genjax.devices import is_main_process
from genjax.errors import RunStopped
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.files import write_history_csv
from genjax.training.step import TrainState, epoch_key


class NonFiniteLoss(RunStopped):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def fit(
    state: TrainState,
    epoch_fn: Callable,
    data: Any,
    run_key: jax.Array,
    epochs: int,
    evaluate: Callable[[TrainState], dict],
    checkpointer: Checkpointer | None = None,
    meta: dict | None = None,
    out: Path | None = None,
    history: list[dict] | None = None,
    progress: bool = True,
) -> tuple[TrainState, list[dict]]:
    """Train from epoch ``len(history)`` up to ``epochs``; returns (state, history).

    Each history row: ``epoch``, ``seconds`` (training only), ``train_*`` (means
    over the epoch's steps) and ``test_*`` (from ``evaluate``). Without a ``checkpointer``
    (training in memory) nothing is saved; without ``out`` no ``history.csv`` is written.
    """
    history = list(history or [])
    start = len(history)
    bar = tqdm(range(start, epochs), desc="epochs", initial=start, total=epochs,
               disable=not (progress and is_main_process()))
    for epoch in bar:
        t0 = time.perf_counter()
        state, steps = epoch_fn(state, data, epoch_key(run_key, epoch))
        steps = jax.device_get(steps)
        seconds = time.perf_counter() - t0
        train = {k: float(np.mean(v)) for k, v in steps.items()}
        if not np.all(np.isfinite(steps["loss"])):  # other metrics may be NaN (a sweep's dead models)
            latest = None
            if checkpointer is not None:
                checkpointer.wait()
                latest = checkpointer.latest_epoch()
            kept = f"the last good checkpoint is epoch {latest} in {checkpointer.directory}" if latest else "no epoch was saved"
            raise NonFiniteLoss(
                f"training loss became non-finite in epoch {epoch + 1}; stopped without saving that epoch "
                f"({kept}). Lower --lr, or check the data and the loss."
            )
        test = {k: float(v) for k, v in jax.device_get(evaluate(state)).items()}
        row = {"epoch": epoch + 1, "seconds": round(seconds, 4)}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"test_{k}": v for k, v in test.items()})
        history.append(row)
        if checkpointer is not None:
            checkpointer.save(epoch + 1, state, {**(meta or {}), "history": history})
        if out is not None and is_main_process():
            write_history_csv(out / "history.csv", history)
        bar.set_postfix(train_loss=f"{train['loss']:.2f}", test_loss=f"{test.get('loss', float('nan')):.2f}")
    if checkpointer is not None:
        checkpointer.wait()
    return state, history
