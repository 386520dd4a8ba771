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


# study and flags -> a word the one `error:` line must hold. Each is refused before any work
# (bad --values at parse time; a batch too large after the --out check, which leaves nothing).
BAD = {
    "latent-dim -3": (["latent-dim", "--values=-3"], "at least 1"),
    "latent-dim 0": (["latent-dim", "--values", "0"], "at least 1"),
    "latent-dim 2.5": (["latent-dim", "--values", "2,2.5"], "integer"),
    "beta -1,nan,inf": (["beta", "--values=-1,nan,inf"], "at least 0"),
    "beta -1,2 without '='": (["beta", "--values", "-1,2"], "--values=-1"),
    "beta nan": (["beta", "--values", "1,nan"], "finite"),
    "beta inf": (["beta", "--values", "inf"], "finite"),
    "beta 1e400": (["beta", "--values", "1e400"], "finite"),
    "beta not a number": (["beta", "--values", "x"], "a number"),
    "beta empty": (["beta", "--values="], "a number"),
    "beta empty item": (["beta", "--values", "1,,2"], "a number"),
    "beta repeated": (["beta", "--values", "1,2,1.0"], "repeats 1.0"),
    "kl-annealing -5": (["kl-annealing", "--values=-5"], "at least 0"),
    "recon-loss unknown": (["recon-loss", "--values", "bernoulli,nope"], "bernoulli, mse"),
    "recon-loss repeated": (["recon-loss", "--values", "mse,mse"], "repeats mse"),
    "seeds repeated": (["seeds", "--values", "1,1"], "repeats 1"),
    "seeds negative": (["seeds", "--values=-1"], "at least 0"),
    "seeds past 2**32": (["seeds", "--values", str(2**32)], "at most"),
    "seeds from --seed past 2**32": (["seeds", "--seed", str(2**32 - 1), "--seeds", "2"], "--seed"),
    "seed -1": (["beta", "--seed", "-1"], "--seed"),
    "seeds 0": (["seeds", "--seeds", "0"], "--seeds"),
    "unknown study": (["gamma"], "invalid choice"),
    "batch > training set": (["beta", "--values", "1", "--batch-size", "60001"], "--batch-size"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_values_exit_2_with_one_line_and_nothing_left(tmp_path, capsys, case):
    from experiments import ablations
    from genjax.runs import run

    flags, needle = case
    code = run.main(ablations.parser, ablations.experiment,
                    [*flags, "--out", str(tmp_path / "new" / "out"), *QUICK])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_values_take_the_single_run_flags_types():
    from experiments import ablations

    args = ablations.parser.parse_args(["beta", "--values", " 0, 0.5 ,4"])
    assert ablations.study_config(args).values == (0.0, 0.5, 4.0)
    args = ablations.parser.parse_args(["seeds", "--seed", "7", "--seeds", "3"])
    assert ablations.study_config(args).values == (7, 8, 9)
    args = ablations.parser.parse_args(["recon-loss"])
    assert ablations.study_config(args).values == ("bernoulli", "mse")


def test_help_names_every_study():
    proc = run_cli("--help", module="experiments.ablations")
    check_ok(proc)
    assert all(s in proc.stdout for s in ("beta", "latent-dim", "recon-loss", "kl-annealing", "seeds"))
    json.dumps(proc.stdout)
