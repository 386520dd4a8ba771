"""python -m experiments.gan_mnist end to end: outputs, scores in metrics.json, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genjax
from conftest import (
    broken_classifier_dir,
    check_load_reproduces,
    check_ok,
    flag_help,
    read_history,
    read_metrics,
    run_cli,
)

SCORE_KEYS = {"n", "fid", "class_entropy", "classifier_score", "precision", "recall"}


@pytest.mark.slow
def test_one_epoch_writes_every_output_with_its_scores(quick_classifier, tmp_path):
    directory, _, _ = quick_classifier
    out = tmp_path / "gan"
    proc = run_cli("--epochs", "1", "--num-samples", "300", "--classifier-dir", directory, "--out", out,
                   "--no-progress", module="experiments.gan_mnist")
    check_ok(proc)
    for name in ("metrics.json", "history.csv", "samples.npy", "samples.png", "interpolation.png", "losses.png",
                 "d_outputs.png", "checkpoints"):
        assert (out / name).exists(), name
    metrics = read_metrics(out)
    assert SCORE_KEYS <= set(metrics) and metrics["n"] == 300 and len(metrics["class_shares"]) == 10
    assert 0 <= metrics["class_entropy"] <= np.log(10) + 1e-9 and metrics["fid"] > 0
    assert metrics["model"] == "mlp" and metrics["d_grad_leak"] is False and metrics["epochs"] == 1
    row = read_history(out)[0]
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "test_d_loss", "test_d_fake"} <= set(row)
    assert 0 < float(row["train_d_fake"]) < float(row["train_d_real"]) < 1  # D tells real from fake
    samples = np.load(out / "samples.npy")
    assert samples.shape == (300, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    check_load_reproduces(out, genjax.GAN, "samples.npy", lambda g: g.keys()["draw"])


def test_a_broken_classifier_stops_it_before_writing_anything(tmp_path):
    out = tmp_path / "gan"
    proc = run_cli("--classifier-dir", broken_classifier_dir(tmp_path / "clf"), "--out", out,
                   module="experiments.gan_mnist")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "python -m experiments.mnist_classifier" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_machine_without_the_classifier_trains_it_on_first_use_and_scores(tmp_path, monkeypatch, capsys):
    """No second command: the first GAN run trains the classifier into --classifier-dir (here for one
    epoch, the default's three would take minutes), says so, and scores its samples with it."""
    from experiments import gan_mnist
    from genjax.evaluation import classifier
    from genjax.runs import run

    monkeypatch.setattr(classifier, "DEFAULT_CONFIG", classifier.ClassifierConfig(epochs=1))
    monkeypatch.setattr(classifier, "MIN_TEST_ACCURACY", 0.95)
    clf, out = tmp_path / "never_trained", tmp_path / "gan"
    argv = ["--epochs", "1", "--num-samples", "200", "--classifier-dir", str(clf), "--out", str(out), "--no-progress"]
    assert run.main(gan_mnist.parser, gan_mnist.experiment, argv) == 0
    err = capsys.readouterr().err
    assert "not trained yet: training it once" in err and "classifier test accuracy" in err
    info = json.loads((clf / "info.json").read_text())
    assert info["test_accuracy"] >= 0.95 and classifier.load(clf)[1]["sha256"] == info["sha256"]
    assert read_metrics(out)["n"] == 200 and read_metrics(out)["fid"] > 0
    unscored = [*argv[:-3], "--no-progress", "--no-score", "--out", str(tmp_path / "b")]
    assert run.main(gan_mnist.parser, gan_mnist.experiment, unscored) == 0
    assert "fid" not in read_metrics(tmp_path / "b")


def test_help_names_the_models_and_the_seed_leak():
    proc = run_cli("--help", module="experiments.gan_mnist")
    check_ok(proc)
    assert "dcgan" in flag_help(proc.stdout, "--preset") and "seed000" in flag_help(proc.stdout, "--preset")
    assert "--model" not in proc.stdout and "never cleared" in " ".join(flag_help(proc.stdout, "--d-grad-leak").split())
    assert "default: the preset's, seed000 20, dcgan 100" in flag_help(proc.stdout, "--latent-dim")
