"""genjax.runs.run: the run directory, resume checks, and checkpoint metadata (toy problem, in process)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import optax
import pytest

from genjax.devices import data_mesh
from genjax.errors import UsageError
from genjax.runs import run
from genjax.runs.checkpoint import Checkpointer
from genjax.training.step import TrainState, make_epoch, make_train_step

STEPS_PER_EPOCH = 10  # 100 examples in batches of 10


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    preset: str = "toy"
    epochs: int = 2
    lr: float = 0.1
    batch_size: int = 10
    seed: int = 0


def toy():
    def loss_fn(params, model_state, batch, key, step):
        loss = jnp.mean(jnp.square(params["w"] - batch["x"]))
        return loss, (model_state, {})

    tx = optax.sgd(0.1)
    epoch_fn = make_epoch(make_train_step(loss_fn, tx), 10, data_mesh())
    state = TrainState.create({"w": jnp.float32(0.0)}, tx, jax.random.key(1, impl="rbg"))
    data = {"x": jnp.linspace(0.0, 2.0, 100)}
    return state, epoch_fn, data, lambda s: {"loss": jnp.square(s.params["w"] - 1.0)}


def args_for(out, resume=False):
    return argparse.Namespace(out=out, resume=resume, no_progress=True)


def fit(out, config=ToyConfig(), resume=False):
    state, epoch_fn, data, evaluate = toy()
    r = run.Run(args_for(out, resume), config)
    return r.fit(state, epoch_fn, data, jax.random.key(2, impl="rbg"), evaluate, STEPS_PER_EPOCH)


def test_checkpoint_meta_is_copied_when_saved(tmp_path):
    # Orbax writes asynchronously; the caller goes on changing its history list at once.
    state = toy()[0]
    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=5)
    history = [{"epoch": 1, "loss": 1.0}]
    for epoch in range(1, 4):
        ckpt.save(epoch, state, {"history": history})
        history.append({"epoch": epoch + 1, "loss": 1.0 / (epoch + 1)})
        history[0]["loss"] = -epoch  # even an in-place edit must not reach the saved copy
    ckpt.close()
    ckpt = Checkpointer(tmp_path / "ckpt")
    for epoch in range(1, 4):
        rows = ckpt.read_meta(epoch)["history"]
        assert [r["epoch"] for r in rows] == list(range(1, epoch + 1)), (epoch, rows)
        assert rows[0]["loss"] == (1.0 if epoch == 1 else -(epoch - 1))
    ckpt.close()


def test_every_kept_checkpoint_holds_its_own_epochs(tmp_path):
    state, history = fit(tmp_path, ToyConfig(epochs=4))
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    ckpt = Checkpointer(tmp_path / "checkpoints")
    like = toy()[0]
    for epoch in (3, 4):  # the two kept
        restored, meta = ckpt.restore(like, epoch)
        assert int(restored.step) == epoch * STEPS_PER_EPOCH
        assert meta["history"] == history[:epoch]
        assert meta["config"] == run.as_json(ToyConfig(epochs=4))
    ckpt.close()


def test_resume_continues_and_equals_a_straight_run(tmp_path):
    straight, h_straight = fit(tmp_path / "a", ToyConfig(epochs=3))
    fit(tmp_path / "b", ToyConfig(epochs=1))
    resumed, h_resumed = fit(tmp_path / "b", ToyConfig(epochs=3), resume=True)
    assert float(resumed.params["w"]) == float(straight.params["w"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(h_resumed) == strip(h_straight)


def test_resume_refuses_a_checkpoint_whose_steps_disagree_with_its_history(tmp_path):
    fit(tmp_path, ToyConfig(epochs=1))
    # What the metadata race produced: epoch 1's parameters beside a history of two epochs.
    ckpt = Checkpointer(tmp_path / "checkpoints")
    state, meta = ckpt.restore(toy()[0])
    meta["history"].append({**meta["history"][0], "epoch": 2})
    ckpt.close()
    Checkpointer(tmp_path / "checkpoints", asynchronous=False).save(2, state, meta)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError, match="inconsistent"):
        fit(tmp_path, ToyConfig(epochs=3), resume=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing touched


def test_resume_refuses_other_settings_and_fewer_epochs(tmp_path):
    fit(tmp_path, ToyConfig(epochs=2))
    with pytest.raises(UsageError, match="lr: 0.1 -> 0.5"):
        fit(tmp_path, ToyConfig(epochs=3, lr=0.5), resume=True)
    with pytest.raises(UsageError, match="already trained 2 epochs"):
        fit(tmp_path, ToyConfig(epochs=1), resume=True)


def test_a_fresh_run_empties_an_earlier_runs_directory(tmp_path):
    fit(tmp_path, ToyConfig(epochs=3))
    (tmp_path / "manifold.png").write_bytes(b"from the earlier run")
    (tmp_path / "metrics.json").write_text("{}")
    state, history = fit(tmp_path, ToyConfig(epochs=1))
    assert len(history) == 1
    names = {p.name for p in tmp_path.iterdir()}
    assert "manifold.png" not in names and "metrics.json" not in names  # nothing of the earlier run
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1"]
    assert json.loads((tmp_path / run.MARKER).read_text())["config"]["epochs"] == 1


def test_a_fresh_run_refuses_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        fit(tmp_path, ToyConfig(epochs=1))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, capsys):
    state, history = fit(tmp_path, ToyConfig(epochs=1), resume=True)
    assert len(history) == 1 and "starting from scratch" in capsys.readouterr().err


def test_config_from_args_and_preset_help():
    presets = {"a": ToyConfig("a", epochs=2, lr=0.1), "b": ToyConfig("b", epochs=5, lr=0.1)}
    p = run.parser("Toy.\n\nMore text.", "toy", "runs/toy", presets, "a")
    ns = p.parse_args(["--preset", "b", "--lr", "0.5", "--seed", "3"])
    assert run.config_from_args(ns, presets) == ToyConfig("b", epochs=5, lr=0.5, seed=3)
    assert run.config_from_args(p.parse_args([]), presets) == presets["a"]
    with pytest.raises(UsageError, match=r"--preset: invalid choice: 'c' \(choose from 'a', 'b'\)"):
        p.parse_args(["--preset", "c"])
    with pytest.raises(UsageError, match="unknown preset"):  # a namespace built without the parser
        run.config_from_args(argparse.Namespace(preset="c"), presets)
    text = " ".join(p.format_help().split())
    assert "More text." in text
    assert "epochs in total (default: the preset's, a 2, b 5)" in text
    assert "learning rate (default 0.1)" in text
