"""genjax.runs.fit.fit: history, checkpoints, resuming, and stopping on a non-finite loss (toy problem)."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.devices import data_mesh
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.fit import NonFiniteLoss, fit
from genjax.training.step import TrainState, make_epoch, make_train_step

STEPS_PER_EPOCH = 10  # 100 examples, batches of 10


def _setup(nan_from_step: int | None = None):
    """Fit w to noisy targets; the loss becomes NaN from ``nan_from_step`` on."""

    def loss_fn(params, model_state, batch, key, step):
        noise = 0.1 * jax.random.normal(key, batch["x"].shape)
        loss = jnp.mean(jnp.square(params["w"] - batch["x"] - noise))
        if nan_from_step is not None:
            loss = jnp.where(step >= nan_from_step, jnp.nan, loss)
        return loss, (model_state, {"w": params["w"]})

    tx = optax.sgd(0.1)
    epoch_fn = make_epoch(make_train_step(loss_fn, tx), 10, data_mesh())
    state = TrainState.create({"w": jnp.float32(0.0)}, tx, jax.random.key(1))
    train = {"x": jnp.linspace(0.0, 2.0, 100)}

    def evaluate(state):
        return {"loss": jnp.square(state.params["w"] - 1.0)}

    return state, epoch_fn, train, evaluate


def _fit(tmp_path, epochs, nan_from_step=None, history=None, state=None, ckpt=None):
    s0, epoch_fn, train, evaluate = _setup(nan_from_step)
    ckpt = ckpt or Checkpointer(tmp_path / "ckpt")
    return fit(state if state is not None else s0, epoch_fn, train, jax.random.key(2), epochs, evaluate, ckpt,
               {"note": "toy"}, tmp_path, history, progress=False), ckpt


def test_fit_writes_history_and_checkpoints(tmp_path):
    (state, history), ckpt = _fit(tmp_path, 3)
    ckpt.close()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert int(state.step) == 3 * STEPS_PER_EPOCH
    assert abs(float(state.params["w"]) - 1.0) < 0.1  # converged to the mean target
    assert history[-1]["test_loss"] < history[0]["test_loss"]
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert len(rows) == 3 and float(rows[2]["train_loss"]) == pytest.approx(history[2]["train_loss"])
    ckpt = Checkpointer(tmp_path / "ckpt")
    assert ckpt.latest_epoch() == 3
    restored, meta = ckpt.restore(_setup()[0])
    assert meta["note"] == "toy" and len(meta["history"]) == 3
    assert int(restored.step) == 30 and float(restored.params["w"]) == float(state.params["w"])
    ckpt.close()


def test_fit_resumed_from_a_checkpoint_replays_exactly(tmp_path):
    (full, full_history), c = _fit(tmp_path / "a", 3)
    c.close()
    (_, first), c = _fit(tmp_path / "b", 1)
    c.close()
    ckpt = Checkpointer(tmp_path / "b" / "ckpt")
    state, meta = ckpt.restore(_setup()[0])
    (resumed, history), c = _fit(tmp_path / "b", 3, history=meta["history"], state=state, ckpt=ckpt)
    c.close()
    assert float(resumed.params["w"]) == float(full.params["w"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(history) == strip(full_history)


def test_non_finite_loss_stops_before_saving_that_epoch(tmp_path):
    with pytest.raises(NonFiniteLoss) as info:
        _fit(tmp_path, 4, nan_from_step=STEPS_PER_EPOCH + 5)  # NaN in the middle of epoch 2
    message = str(info.value)
    assert "epoch 2" in message and "--lr" in message
    ckpt = Checkpointer(tmp_path / "ckpt")
    assert ckpt.latest_epoch() == 1  # only the good epoch
    restored, meta = ckpt.restore(_setup()[0])
    assert int(restored.step) == STEPS_PER_EPOCH
    assert np.isfinite(float(restored.params["w"]))
    assert [r["epoch"] for r in meta["history"]] == [1]
    ckpt.close()
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1]


def test_non_finite_loss_in_the_first_epoch_saves_nothing(tmp_path):
    with pytest.raises(NonFiniteLoss, match="epoch 1"):
        _fit(tmp_path, 2, nan_from_step=3)
    assert Checkpointer(tmp_path / "ckpt").latest_epoch() is None
    assert not (tmp_path / "history.csv").exists()


def test_non_finite_message_is_clear_when_no_epoch_was_saved(tmp_path):
    with pytest.raises(NonFiniteLoss) as info:
        _fit(tmp_path, 2, nan_from_step=0)
    # "last good checkpoint: epoch None in ..." names a checkpoint that does not exist.
    assert "None" not in str(info.value), str(info.value)
