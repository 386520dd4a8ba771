"""python -m experiments.ablations end to end on real MNIST: tables, groups, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import check_ok, read_history, read_metrics, run_cli

QUICK = ("--epochs", "1", "--iwae-k", "10", "--num-samples", "100", "--no-score", "--no-progress")


def test_seeds_study_model_0_is_the_main_job_with_that_seed(seed002_one_epoch, tmp_path):
    """Model k of a sweep starts from and draws the noise of `vae_mnist --seed k`; model 0 also
    shares its batch order (the sweep's seed), so it is that run, to float tolerance."""
    out = tmp_path / "seeds"
    check_ok(run_cli("seeds", "--seeds", "2", "--out", out, *QUICK, module="experiments.ablations", timeout=600))
    metrics, main = read_metrics(out), read_metrics(seed002_one_epoch)
    first, second = metrics["models"]
    np.testing.assert_allclose(first["neg_elbo"], main["test_neg_elbo"], rtol=1e-4)
    np.testing.assert_allclose(first["nll_iwae"], main["test_nll_iwae"], rtol=1e-4)
    assert abs(second["neg_elbo"] - first["neg_elbo"]) > 1e-3  # its own seed: another model
    mean, std = metrics["mean_std"]["neg_elbo"]
    np.testing.assert_allclose(mean, (first["neg_elbo"] + second["neg_elbo"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(std, abs(first["neg_elbo"] - second["neg_elbo"]) / np.sqrt(2), rtol=1e-5)
    table = (out / "results.md").read_text()
    assert "| seed=0 |" in table and "| mean |" in table and "| std |" in table
    assert (out / "results.csv").exists() and (out / "curves.png").exists() and (out / "samples_seed=1.png").exists()
    row = read_history(out / "sweep")[0]
    assert {"train_loss_0", "train_loss_1", "test_neg_elbo_0", "test_neg_elbo_1", "train_alive"} <= set(row)


@pytest.mark.slow
def test_latent_sizes_run_as_groups_and_each_resumes(tmp_path):
    out = tmp_path / "dims"
    args = ("latent-dim", "--values", "2,3", "--out", out, *QUICK)
    check_ok(run_cli(*args, module="experiments.ablations", timeout=600))
    before = [read_history(out / f"group_{g}") for g in (0, 1)]
    assert (out / "latent_dim.png").exists() and [len(h) for h in before] == [1, 1]
    models = read_metrics(out)["models"]
    assert [m["latent_dim"] for m in models] == [2, 3] and all(0 <= m["active_units"] <= m["latent_dim"] for m in models)
    check_ok(run_cli(*args, "--resume", "--epochs", "2", module="experiments.ablations", timeout=600))
    after = [read_history(out / f"group_{g}") for g in (0, 1)]
    assert [len(h) for h in after] == [2, 2]
    assert [h[0] for h in after] == [h[0] for h in before]  # epoch 1 restored, not retrained
    assert read_metrics(out)["epochs"] == 2


def test_bad_values_exit_2_with_one_line(tmp_path):
    for values in ("x", "bernoulli,nope"):
        study = "beta" if values == "x" else "recon-loss"
        proc = run_cli(study, "--values", values, "--out", tmp_path / "bad", "--no-score",
                       module="experiments.ablations")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--values" in proc.stderr
        assert not (tmp_path / "bad").exists()
    proc = run_cli("--help", module="experiments.ablations")
    check_ok(proc)
    assert all(s in proc.stdout for s in ("beta", "latent-dim", "recon-loss", "kl-annealing", "seeds"))
    json.dumps(proc.stdout)
