"""The conditional VAE: the label reaches encoder and decoder, and its samples are the digit asked for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import check_load_reproduces, check_ok, read_metrics, run_cli
from genjax.models.mlp_vae import VAE
from genjax.objectives import vae


def test_conditioning_changes_the_decoder_and_the_loss_reads_labels():
    model = VAE((16,), 3, (8, 8, 1), "relu", num_classes=10)
    params = vae.init_params(model, jax.random.key(0), (8, 8, 1))
    z = jnp.zeros((2, 3))
    a = vae.decode_means(model, params, z, vae.condition(model, jnp.array([1, 2])))
    assert a.shape == (2, 8, 8, 1) and float(jnp.max(jnp.abs(a[0] - a[1]))) > 1e-4
    loss = vae.make_vae_loss(model, "bernoulli", "threshold")
    batch = {"image": jnp.full((4, 8, 8, 1), 200, jnp.uint8), "label": jnp.array([0, 1, 2, 3])}
    l1, _ = loss(params, {}, batch, jax.random.key(1), 0)
    l2, _ = loss(params, {}, {**batch, "label": jnp.array([3, 2, 1, 0])}, jax.random.key(1), 0)
    assert np.isfinite(float(l1)) and abs(float(l1) - float(l2)) > 1e-5
    # The unconditional VAE's parameters are unchanged by the new option.
    plain = VAE((16,), 3, (8, 8, 1), "relu")
    assert jax.tree.map(jnp.shape, vae.init_params(plain, jax.random.key(0), (8, 8, 1)))["encoder"]["hidden_0"][
        "kernel"] == (64, 16)


@pytest.mark.slow
def test_one_epoch_generates_the_requested_digits(quick_classifier, tmp_path):
    directory, _, _ = quick_classifier
    out = tmp_path / "cvae"
    check_ok(run_cli("--epochs", "1", "--num-samples", "500", "--digit", "3", "--classifier-dir", directory,
                     "--out", out, "--no-progress", module="experiments.cvae_mnist"))
    for name in ("metrics.json", "samples.npy", "sample_labels.npy", "grid.png", "class_interpolation.png",
                 "digit_3.png", "elbo.png", "history.csv"):
        assert (out / name).exists(), name
    labels, samples = np.load(out / "sample_labels.npy"), np.load(out / "samples.npy")
    assert samples.shape == (500, 28, 28) and np.bincount(labels).tolist() == [50] * 10
    m = read_metrics(out)
    # Chance is 0.1: a decoder that ignored its label would be near it.
    assert m["class_accuracy"] > 0.3 and len(m["class_accuracy_per_digit"]) == 10
    assert m["n"] == 500 and m["fid"] > 0
    import genjax

    check_load_reproduces(out, genjax.VAE, "samples.npy", lambda v: jax.random.split(v.keys()["draw"], 3)[0],
                          labels=labels)
