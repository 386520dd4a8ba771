"""The autoencoder experiments end to end: ae_mnist, ae_applications, ae_cifar10 (on TFDS's mocked
records, in this process), resume, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import (
    broken_classifier_dir,
    check_load_reproduces,
    check_ok,
    numbers_only,
    read_history,
    read_metrics,
    run_cli,
)
from tfds_mocks import mock_tfds

SCORE_KEYS = {"n", "fid", "class_entropy", "classifier_score", "precision", "recall"}


@pytest.mark.slow
def test_ae_mnist_writes_the_scatter_and_scores_ae_and_vae_samples(quick_classifier, tmp_path):
    directory, _, _ = quick_classifier
    out = tmp_path / "ae"
    check_ok(run_cli("--preset", "seed004", "--epochs", "1", "--num-samples", "200", "--classifier-dir", directory,
                     "--out", out, "--no-progress", module="experiments.ae_mnist", timeout=600))
    for name in ("metrics.json", "samples.md", "samples.csv", "reconstructions.png", "losses.png", "latent_scatter.png",
                 "vae_latent_scatter.png", "manifold.png", "vae_manifold.png", "ae/history.csv", "vae/history.csv",
                 "ae/checkpoints", "vae/checkpoints",
                 *(f"samples_{s}.{ext}" for s in ("ae_prior", "ae_fitted", "vae_prior") for ext in ("npy", "png"))):
        assert (out / name).exists(), name
    m = read_metrics(out)
    assert m["model"] == "conv" and m["likelihood"] == "bernoulli" and m["vae"]["latent_dim"] == 2 and m["vae"]["preset"] == "seed003"
    assert set(m["samples"]) == {"ae_prior", "ae_fitted", "vae_prior"}
    for s in m["samples"].values():
        assert SCORE_KEYS <= set(s) and s["n"] == 200 and 0 <= s["class_entropy"] <= np.log(10) + 1e-9 and s["fid"] > 0
    assert len(m["latent"]["ae_code_std"]) == 2 and m["test_psnr"] > 10
    row = read_history(out / "ae")[0]
    assert float(row["test_loss"]) < float(row["train_loss"]) * 1.5 and {"train_mse", "test_psnr"} <= set(row)
    samples = np.load(out / "samples_ae_prior.npy")
    assert samples.shape == (200, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    import jax

    import genjax

    check_load_reproduces(out, genjax.Autoencoder, "samples_ae_prior.npy",
                          lambda m: jax.random.split(m.keys()["draw"], 3)[0])
    check_load_reproduces(out / "vae", genjax.VAE, out / "samples_vae_prior.npy",
                          lambda m: jax.random.split(m.keys()["draw"], 3)[2])


@pytest.mark.slow
def test_ae_applications_denoises_and_detects_anomalies(tmp_path):
    out = tmp_path / "apps"
    check_ok(run_cli("--epochs", "1", "--digits", "0,1", "--noise", "0.3", "--out", out, "--no-progress",
                     module="experiments.ae_applications", timeout=600))
    for name in ("metrics.json", "denoising.md", "denoising.csv", "denoising.png", "anomaly.md", "anomaly.csv",
                 "anomaly_ae.png", "anomaly_vae.png", "denoising/history.csv", "ae_digit_0/history.csv",
                 "vae_digit_1/history.csv"):
        assert (out / name).exists(), name
    m = read_metrics(out)
    clean, level = m["denoising"]
    assert clean["noise"] == 0 and level["noise"] == 0.3 and clean["psnr_ae"] > level["psnr_ae"]
    assert level["psnr_dae"] > level["psnr_noisy"] and level["psnr_dae"] > level["psnr_ae"]  # the DAE denoises
    assert [row["digit"] for row in m["anomaly"]] == [0, 1]
    for row in m["anomaly"]:
        assert 0.9 < row["auroc_ae"] <= 1 and 0.9 < row["auroc_vae"] <= 1 and row["mse_rest_ae"] > row["mse_normal_ae"]
        history = read_history(out / f"ae_digit_{row['digit']}")  # the final epoch's evaluation: the same number
        assert float(history[-1]["test_auroc"]) == pytest.approx(row["auroc_ae"], abs=1e-9)
    sweep_row = read_history(out / "denoising")[0]
    assert {"train_loss_0", "train_loss_1", "test_psnr_1", "test_psnr_input_1"} <= set(sweep_row)


def _cifar10(argv, monkeypatch, tmp_path):
    """``python -m experiments.ae_cifar10 ARGV`` in this process, on 24 mocked CIFAR-10 records per split."""
    from experiments import ae_cifar10
    from genjax.runs import run

    monkeypatch.setenv("GENJAX_CACHE_DIR", str(tmp_path / "cache"))  # keep the mocked arrays out of the real cache
    with mock_tfds(num_examples=24):
        return run.main(ae_cifar10.parser, ae_cifar10.experiment, [*map(str, argv), "--batch-size", "8", "--no-progress"])


@pytest.mark.slow
def test_ae_cifar10_resumed_equals_a_straight_run(monkeypatch, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _cifar10(["--epochs", "2", "--noise", "0.1", "--out", straight], monkeypatch, tmp_path) == 0
    for name in ("metrics.json", "history.csv", "reconstructions.png", "losses.png", "checkpoints"):
        assert (straight / name).exists(), name
    m = read_metrics(straight)
    assert m["code_shape"] == [2, 2, 96] and m["model"] == "fully_conv" and m["likelihood"] == "mse"
    assert {"test_loss", "test_mse", "test_psnr", "test_psnr_input"} <= set(m)
    assert _cifar10(["--epochs", "1", "--noise", "0.1", "--out", split], monkeypatch, tmp_path) == 0
    assert _cifar10(["--epochs", "2", "--noise", "0.1", "--out", split, "--resume"], monkeypatch, tmp_path) == 0
    assert [numbers_only(r) for r in read_history(split)] == [numbers_only(r) for r in read_history(straight)]
    a, b = numbers_only(read_metrics(split)), numbers_only(read_metrics(straight))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    # A resume with another noise level is refused: it is a different model.
    assert _cifar10(["--epochs", "3", "--noise", "0.2", "--out", split, "--resume"], monkeypatch, tmp_path) == 2


BAD = [
    ("experiments.ae_mnist", ["--recon", "l1"], "--likelihood"),
    ("experiments.ae_mnist", ["--likelihood", "l1"], "--likelihood"),
    ("experiments.ae_mnist", ["--noise", "-0.1"], "--noise"),
    ("experiments.ae_mnist", ["--num-samples", "2"], "--num-samples"),
    ("experiments.ae_mnist", ["--classifier-dir", "BROKEN"], "python -m experiments.mnist_classifier"),
    ("experiments.ae_applications", ["--digits", "3,10"], "--digits"),
    ("experiments.ae_applications", ["--noise", "0.1,0"], "--noise"),
    ("experiments.ae_applications", ["--tasks", "denoising,painting"], "--tasks"),
    ("experiments.ae_cifar10", ["--recon", "bogus"], "--likelihood"),
]


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    for i, (module, args, needle) in enumerate(BAD):
        out = tmp_path / f"bad{i}"
        args = [str(broken_classifier_dir(tmp_path / f"broken{i}")) if a == "BROKEN" else a for a in args]
        proc = run_cli(*args, "--epochs", "1", "--out", out, module=module)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (module, args, proc.stderr[-2000:])
        assert len(errors) == 1 and needle in errors[0], (module, args, proc.stderr)
        assert not out.exists(), (module, args)
