"""The experiment CLI end to end (subprocesses): outputs, presets, resuming, reproducibility, divergence."""

from __future__ import annotations

import json
import math

import jax
import matplotlib.image
import numpy as np
import pytest

import genjax
from conftest import FAST, check_load_reproduces, check_ok, flag_help, numbers_only, read_history, read_metrics, run_cli

PNGS = ("samples.png", "reconstructions.png", "interpolation.png", "elbo.png")


def _check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 50 and image.shape[1] > 50, (path, image.shape)
    assert image.std() > 0.01, f"{path} is blank"


def _epoch_dirs(ckpt_dir):
    return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) if ckpt_dir.exists() else []


def test_seed002_two_epochs_writes_all_outputs(seed002_two_epochs):
    out = seed002_two_epochs
    m = read_metrics(out)
    for key in ("preset", "seed", "epochs", "devices", "seconds_per_epoch", "test_neg_elbo", "test_nll_iwae",
                "iwae_k", "iwae_seconds"):
        assert key in m, key
    assert (m["preset"], m["seed"], m["epochs"], m["devices"], m["iwae_k"]) == ("seed002", 0, 2, 1, 10)
    assert m["seconds_per_epoch"] > 0 and m["iwae_seconds"] > 0
    assert 80 < m["test_neg_elbo"] < 200, m  # nats per image after 2 epochs
    assert m["test_nll_iwae"] <= m["test_neg_elbo"]
    assert m["test_nll_iwae"] > 60
    assert m["test_loss"] == pytest.approx(m["test_recon"] + m["test_kl"], rel=1e-5)

    history = read_history(out)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert float(history[1]["train_loss"]) < float(history[0]["train_loss"])
    assert float(history[1]["test_neg_elbo"]) < float(history[0]["test_neg_elbo"])

    for name in PNGS:
        _check_png(out / name)
    assert not (out / "latent_scatter.png").exists() and not (out / "manifold.png").exists()  # latent_dim 20
    samples = np.load(out / "samples.npy")
    assert samples.shape == (100, 28, 28)
    assert np.issubdtype(samples.dtype, np.floating)
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert samples.std() > 0.05  # digits, not a constant image
    assert _epoch_dirs(out / "checkpoints") == [1, 2]
    check_load_reproduces(out, genjax.VAE, "samples.npy", lambda m: jax.random.split(m.keys()["draw"])[0])
    # seed002's pixels are binary: the samples it is scored by are Bernoulli draws of those means.
    binary = np.load(out / "samples_binary.npy")
    assert binary.shape == samples.shape and set(np.unique(binary)) == {0.0, 1.0}
    assert abs(binary.mean() - samples.mean()) < 0.01 and binary[samples > 0.99].mean() > 0.97
    check_load_reproduces(out, genjax.VAE, "samples_binary.npy", lambda m: jax.random.split(m.keys()["draw"])[0],
                          binary=True)


def test_final_neg_elbo_is_the_last_checkpoints_test_elbo(seed002_two_epochs, mnist):
    """Recompute the test -ELBO of the saved final parameters independently (NumPy, float64,
    fresh threefry noise, 4 z per image) and compare with what metrics.json reports."""
    import jax
    import jax.numpy as jnp

    from genjax.models.mlp_vae import VAE
    from genjax.runs.checkpoint import Checkpointer
    from genjax.training.optim import make_optimizer
    from genjax.training.step import TrainState

    out = seed002_two_epochs
    m = read_metrics(out)
    cfg = m["config"]
    model = VAE(tuple(cfg["hidden"]), cfg["latent_dim"], (28, 28, 1), cfg["activation"])
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(0))["params"]
    like = TrainState.create(params, make_optimizer(cfg["optimizer"], cfg["lr"]), jax.random.key(0, impl=cfg["prng"]))
    ckpt = Checkpointer(out / "checkpoints")
    state, _ = ckpt.restore(like)
    ckpt.close()
    assert int(state.step) == 2 * 469  # the checkpoint after the last epoch

    x = (mnist[1].images.astype(np.float64) / 255 > 0.5).reshape(-1, 784)
    mean, log_var = (np.asarray(a, np.float64) for a in model.apply({"params": state.params}, jnp.asarray(
        x.reshape(-1, 28, 28, 1), jnp.float32), method="encode"))
    kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1 - log_var, axis=1)
    eps = np.random.default_rng(0).standard_normal((4, *mean.shape))
    z = mean + np.exp(0.5 * log_var) * eps
    logits = np.asarray(model.apply({"params": state.params}, jnp.asarray(z, jnp.float32), method="decode"), np.float64)
    logits = logits.reshape(*z.shape[:-1], 784)
    recon = np.mean(np.sum(np.logaddexp(0, logits) - x * logits, axis=-1), axis=0)  # per image, over 4 z
    neg_elbo = recon + kl
    se = neg_elbo.std() / np.sqrt(len(neg_elbo))
    assert abs(m["test_neg_elbo"] - neg_elbo.mean()) < 4 * se + 0.05, (m["test_neg_elbo"], neg_elbo.mean(), se)
    assert abs(m["test_kl"] - kl.mean()) < 1e-3 * kl.mean()  # closed form: no noise
    assert m["test_nll_iwae"] < neg_elbo.mean()


@pytest.mark.slow
def test_latent_dim_2_adds_latent_plots(tmp_path):
    proc = run_cli("--preset", "seed002", "--epochs", "1", "--latent-dim", "2", "--out", tmp_path, *FAST)
    check_ok(proc)
    assert read_metrics(tmp_path)["config"]["latent_dim"] == 2
    for name in (*PNGS, "latent_scatter.png", "manifold.png"):
        _check_png(tmp_path / name)
    # A fresh run into the same directory leaves nothing of the earlier one behind.
    check_ok(run_cli("--preset", "seed002", "--epochs", "0", "--out", tmp_path, *FAST))
    assert not (tmp_path / "latent_scatter.png").exists() and not (tmp_path / "manifold.png").exists()
    assert read_metrics(tmp_path)["config"]["latent_dim"] == 20 and not (tmp_path / "history.csv").exists()
    assert _epoch_dirs(tmp_path / "checkpoints") == []


@pytest.mark.slow
def test_seed000_reports_a_loss_but_no_likelihood(tmp_path):
    proc = run_cli("--preset", "seed000", "--epochs", "1", "--out", tmp_path, *FAST)
    check_ok(proc)
    m = read_metrics(tmp_path)
    assert m["preset"] == "seed000" and m["likelihood"] == "mse" and m["pixels"] == "float"
    assert math.isfinite(m["test_loss"]) and m["test_loss"] > 0
    for key in ("test_neg_elbo", "test_nll_iwae", "iwae_k", "iwae_seconds"):
        assert key not in m, key
    history = read_history(tmp_path)
    assert len(history) == 1 and "test_neg_elbo" not in history[0] and "test_loss" in history[0]
    _check_png(tmp_path / "elbo.png")
    stdout = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    assert stdout["test_loss"] == m["test_loss"]


@pytest.mark.slow
def test_resume_replays_exactly_and_same_seed_is_reproducible(tmp_path, seed002_two_epochs, seed002_one_epoch):
    b = tmp_path / "b"
    # --resume with nothing to resume starts afresh (and says so).
    first = run_cli("--preset", "seed002", "--epochs", "1", "--resume", "--out", b, *FAST)
    check_ok(first)
    assert "starting from scratch" in first.stderr
    # Same seed, same settings, separate runs: equal numbers.
    assert [numbers_only(r) for r in read_history(b)] == [numbers_only(r) for r in read_history(seed002_one_epoch)]
    assert numbers_only(read_metrics(b)) == numbers_only(read_metrics(seed002_one_epoch))

    second = run_cli("--preset", "seed002", "--epochs", "2", "--resume", "--out", b, *FAST)
    check_ok(second)
    assert "resuming" in second.stderr
    resumed, full = read_history(b), read_history(seed002_two_epochs)
    assert len(resumed) == 2
    assert [numbers_only(r) for r in resumed] == [numbers_only(r) for r in full]
    mb, ma = read_metrics(b), read_metrics(seed002_two_epochs)
    for key in ("test_neg_elbo", "test_nll_iwae", "test_loss", "test_recon", "test_kl", "test_neg_elbo_k_samples"):
        assert mb[key] == ma[key], key
    assert mb["epochs"] == 2
    assert np.array_equal(np.load(b / "samples.npy"), np.load(seed002_two_epochs / "samples.npy"))

    # Resuming with a different learning rate is refused, and leaves the run as it was.
    before = (b / "metrics.json").read_text()
    bad = run_cli("--preset", "seed002", "--epochs", "3", "--resume", "--lr", "0.01", "--out", b, *FAST)
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lr" in errors[0], bad.stderr
    assert (b / "metrics.json").read_text() == before
    assert _epoch_dirs(b / "checkpoints") == [1, 2]


@pytest.mark.slow
def test_diverging_run_stops_cleanly_without_saving_bad_epochs(tmp_path):
    proc = run_cli("--preset", "seed002", "--epochs", "2", "--lr", "1e30", "--out", tmp_path, *FAST)
    assert proc.returncode != 0 and proc.returncode != 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite" in errors[0] and "--lr" in errors[0], proc.stderr
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "history.csv").exists()
    assert _epoch_dirs(tmp_path / "checkpoints") == []  # it diverged in epoch 1: no epoch was good


@pytest.mark.slow
def test_resume_to_fewer_epochs_than_done_exits_2_and_keeps_the_results(tmp_path, seed002_two_epochs):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(seed002_two_epochs, out)
    before = (out / "metrics.json").read_text()
    proc = run_cli("--preset", "seed002", "--epochs", "1", "--resume", "--out", out, *FAST)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "already trained 2 epochs" in proc.stderr
    assert (out / "metrics.json").read_text() == before  # nothing rewritten or removed
    assert _epoch_dirs(out / "checkpoints") == [1, 2]


def test_help_shows_the_whole_docstring_and_the_presets_values():
    proc = run_cli("--help")
    check_ok(proc)
    assert "Writes into --out" in proc.stdout and "--epochs 30 --resume" in proc.stdout
    for flag, shown in (("--seed", "default 0"), ("--lr", "default 0.001"), ("--latent-dim", "default 20"),
                        ("--batch-size", "default 128"), ("--epochs", "seed000 10, seed002 20, seed003 10"),
                        ("--hidden", "seed000 400, seed002 200,200"), ("--pixels", "seed002 threshold")):
        assert shown in flag_help(proc.stdout, flag), (flag, flag_help(proc.stdout, flag))
