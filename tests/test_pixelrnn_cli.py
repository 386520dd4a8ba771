"""``python -m experiments.pixelrnn_mnist`` end to end (outputs, resume, --help), and 8 devices against 1."""

from __future__ import annotations

import jax
import matplotlib.image
import numpy as np
import pytest

from conftest import (
    check_load_reproduces,
    check_ok,
    flag_help,
    numbers_only,
    read_history,
    read_metrics,
    run_cli,
    script_json_on_devices,
)

MODULE = "experiments.pixelrnn_mnist"
# A small, fast model: 59 steps of 1024 images per epoch.
SMALL = ("--hidden", "16", "--batch-size", "1024", "--num-samples", "64", "--no-progress")


def pixelrnn_cli(*args, **kwargs):
    return run_cli(*args, module=MODULE, **kwargs)


@pytest.fixture(scope="session")
def pixelrnn_two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixelrnn_e2")
    check_ok(pixelrnn_cli("--epochs", "2", "--out", out, *SMALL))
    return out


def test_outputs_metrics_and_pictures(pixelrnn_two_epochs):
    out = pixelrnn_two_epochs
    m = read_metrics(out)
    for key in ("test_nll", "test_bits_per_dim", "binarization", "epochs", "hidden", "seconds_per_epoch",
                "sampling_seconds", "devices"):
        assert key in m, key
    assert (m["epochs"], m["hidden"], m["layers"], m["devices"]) == (2, 16, 1, 1)
    assert m["binarization"].startswith("threshold")
    assert 80 < m["test_nll"] < 300, m  # nats per image: far below 784 ln 2 = 543 (untrained)
    assert m["test_bits_per_dim"] == pytest.approx(m["test_nll"] / (784 * np.log(2)), rel=1e-6)
    history = read_history(out)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert float(history[1]["test_nll"]) < float(history[0]["test_nll"])  # training lowers the test NLL
    samples = np.load(out / "samples.npy")
    assert samples.shape == (64, 28, 28) and set(np.unique(samples)) <= {0.0, 1.0}
    assert 0.02 < samples.mean() < 0.5  # mostly background, some ink
    for name in ("samples.png", "completions.png", "nll.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 50 and image.std() > 0.01, name
    import genjax

    check_load_reproduces(out, genjax.PixelRNN, "samples.npy", lambda m: jax.random.split(m.keys()["draw"])[0])


@pytest.mark.slow
def test_resume_equals_a_straight_run(tmp_path, pixelrnn_two_epochs):
    check_ok(pixelrnn_cli("--epochs", "1", "--out", tmp_path, *SMALL))
    proc = pixelrnn_cli("--epochs", "2", "--resume", "--out", tmp_path, *SMALL)
    check_ok(proc)
    assert "resuming" in proc.stderr
    assert [numbers_only(r) for r in read_history(tmp_path)] == \
        [numbers_only(r) for r in read_history(pixelrnn_two_epochs)]
    a, b = read_metrics(tmp_path), read_metrics(pixelrnn_two_epochs)
    assert (a["test_nll"], a["test_bits_per_dim"]) == (b["test_nll"], b["test_bits_per_dim"])
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"), np.load(pixelrnn_two_epochs / "samples.npy"))


DEVICES_SCRIPT = """
import json, jax, jax.numpy as jnp, numpy as np, optax
from genjax import data
from genjax.objectives import pixelrnn
from genjax.models.pixel_rnn import PixelRNN
from genjax.training.step import TrainState, epoch_key, make_epoch, make_train_step
from genjax.devices import data_mesh, replicate
train, test = data.load_dataset("mnist")
mesh = data_mesh()
model = PixelRNN(hidden=16)
x_test = replicate(pixelrnn.flat_binary(jnp.asarray(test.images[:200])), mesh)
params = model.init(jax.random.key(0), x_test[:1])["params"]
tx = optax.adamw(3e-3)
state = replicate(TrainState.create(params, tx, jax.random.key(1, impl="rbg")), mesh)
epoch_fn = make_epoch(make_train_step(pixelrnn.make_loss(model), tx), 128, mesh)
state, m = epoch_fn(state, replicate({"image": jnp.asarray(train.images[:1000])}, mesh), epoch_key(jax.random.key(2, impl="rbg"), 0))
ll = pixelrnn.log_likelihood(model, state.params, x_test, chunk=64, mesh=mesh)
xs, log_p = pixelrnn.sample(model, jax.device_get(state.params), jax.random.key(3, impl="rbg"), 16, mesh=mesh)
print(json.dumps({"devices": mesh.size, "train_nll": np.asarray(m["nll"]).tolist(), "test_nll": float(-ll.mean()),
                  "samples": np.asarray(xs).astype(int).tolist(), "log_p": np.asarray(log_p).tolist()}))
"""


@pytest.mark.slow
def test_eight_devices_match_one():
    one, eight = (script_json_on_devices(DEVICES_SCRIPT, devices) for devices in (1, 8))
    assert (one["devices"], eight["devices"]) == (1, 8)
    # Same batches and keys; only the order of float reductions differs (8 steps, the last one padded).
    np.testing.assert_allclose(eight["train_nll"], one["train_nll"], rtol=1e-4)
    assert eight["test_nll"] == pytest.approx(one["test_nll"], rel=1e-4)
    # The sampler, split over 8 devices, draws the same images.
    assert np.mean(np.asarray(eight["samples"]) != np.asarray(one["samples"])) < 1e-3
    np.testing.assert_allclose(eight["log_p"], one["log_p"], rtol=1e-3)


def test_help_shows_the_docstring_and_each_presets_value():
    proc = pixelrnn_cli("--help")
    check_ok(proc)
    text = " ".join(proc.stdout.split())
    assert "completions.png" in text and "--hidden 128 --epochs 4" in text  # the whole docstring
    for flag, shown in (("--hidden", "default 512"), ("--lr", "default 0.0003"), ("--batch-size", "default 128"),
                        ("--seed", "default 0"), ("--epochs", "default 10"), ("--temperature", "default 1.0")):
        assert shown in flag_help(proc.stdout, flag), (flag, flag_help(proc.stdout, flag))
