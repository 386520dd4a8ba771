"""The sample-quality evaluator: each measure against a plain reference or a known answer,
the classifier's cache checks, and the two scripts (experiments.score_samples, experiments.mnist_classifier)."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from conftest import broken_classifier_dir, check_ok, run_cli
from experiments import score_samples
from genjax.errors import UsageError
from genjax.evaluation import classifier
from genjax.evaluation import evaluator as E
from genjax.models.digit_cnn import Conv3x3
from genjax.runs import cli


def _random_covariance(rng, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d)) * rng.uniform(0.1, 3.0, size=d)  # uneven scales, correlated
    return a @ a.T / d + 1e-3 * np.eye(d)


# -- FID ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert E.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)
    assert E.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-7)  # symmetric


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_length():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3000, 32)) @ rng.normal(size=(32, 32))
    assert E.fid(feats, feats) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(feats, rowvar=False)))
    shift = rng.normal(size=32)
    assert E.fid(feats, feats + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)
    s = _random_covariance(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    assert E.frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-7)
    # Same mean, different covariance: the trace term alone, and positive.
    other = rng.normal(size=(3000, 32)) @ rng.normal(size=(32, 32))
    assert E.fid(feats, other - other.mean(0) + feats.mean(0)) > 1.0


def test_gaussian_stats_use_ddof_1():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = E.gaussian_stats(x)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(x.T, ddof=1))


# -- class statistics ---------------------------------------------------------------------------

def _one_hot(labels, eps=0.0):
    p = np.full((len(labels), 10), eps / 9)
    p[np.arange(len(labels)), labels] = 1 - eps
    return p


def test_class_entropy_and_shares():
    balanced = _one_hot(np.arange(1000) % 10)
    assert E.class_entropy(balanced) == pytest.approx(np.log(10))
    assert E.class_entropy(_one_hot(np.full(500, 3))) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(E.class_shares(balanced), np.full(10, 0.1))
    shares = E.class_shares(_one_hot(np.array([3, 3, 3, 7]), eps=0.2))
    np.testing.assert_allclose(shares, np.eye(10)[3] * 0.75 + np.eye(10)[7] * 0.25)
    # The entropy of the *mean* distribution: uniform predictions everywhere also give ln 10.
    assert E.class_entropy(np.full((5, 10), 0.1)) == pytest.approx(np.log(10))


def test_classifier_score_is_10_for_confident_balanced_and_1_for_identical_predictions():
    assert E.classifier_score(_one_hot(np.arange(1000) % 10, eps=1e-9)) == pytest.approx(10.0, rel=1e-6)
    same = np.tile(np.random.default_rng(0).dirichlet(np.ones(10)), (100, 1))
    assert E.classifier_score(same) == pytest.approx(1.0, abs=1e-12)
    # Confident but only two digits: exp(ln 2) = 2.
    assert E.classifier_score(_one_hot(np.arange(100) % 2)) == pytest.approx(2.0)


# -- distances, precision/recall, memorization --------------------------------------------------

@pytest.fixture
def small_blocks(monkeypatch):
    """Force many row blocks (and a padded last one) through the jitted distance kernels."""
    monkeypatch.setattr(E, "BLOCK_ENTRIES", 7 * 300)


def _brute_precision_recall(real, fake, k):
    def radii(x):
        d = cdist(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    rr, rf = radii(real), radii(fake)
    d = cdist(fake, real)
    return np.mean(np.any(d <= rr[None, :], 1)), np.mean(np.any(d.T <= rf[None, :], 1))


def test_distance_kernels_match_brute_force(small_blocks):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(300, 8)) + 5).astype(np.float32)  # off-centre: norms >> distances
    y = (rng.normal(size=(123, 8)) + 5).astype(np.float32)
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(E.kth_neighbour_distance(x, 3), np.sort(d, 1)[:, 2], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(E.nearest_distance(y, x), cdist(y, x).min(1), rtol=1e-4, atol=1e-4)
    radii = rng.uniform(0.5, 1.5, size=300)
    np.testing.assert_array_equal(E.inside_any_ball(y, x, radii), np.any(cdist(y, x) <= radii, 1))
    repeated = np.concatenate([np.repeat(x[:1], 3, 0), x[1:]])  # ties: x[0]'s 2nd neighbour is a copy
    assert E.kth_neighbour_distance(repeated, 2)[0] == 0 and E.kth_neighbour_distance(repeated, 3)[0] > 0


def test_precision_recall_matches_brute_force_on_overlapping_clouds(small_blocks):
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 5)).astype(np.float32)
    fake = (rng.normal(size=(250, 5)) + 1.0).astype(np.float32)
    p, r = E.precision_recall(real, fake, k=3)
    bp, br = _brute_precision_recall(real, fake, 3)
    assert (p, r) == (pytest.approx(bp), pytest.approx(br))
    assert 0.2 < p < 0.8 and 0.2 < r < 0.8  # a case where neither is trivially 0 or 1


def test_precision_recall_known_answers():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(1000, 4)).astype(np.float32)
    assert E.precision_recall(real, real) == (1.0, 1.0)
    repeated = np.concatenate([np.repeat(real[:1] + 7, 6, 0), real])  # radius 0 for the six copies
    assert E.precision_recall(repeated, repeated) == (1.0, 1.0)
    assert E.precision_recall(real, real + 100) == (0.0, 0.0)
    core = real[np.argsort(np.linalg.norm(real, axis=1))[:50]]  # a tight cluster at the centre
    p, r = E.precision_recall(real, core)
    assert p == 1.0 and r < 0.3


def test_memorization_of_copies_and_of_fresh_draws():
    rng = np.random.default_rng(4)
    train = rng.normal(size=(2000, 16)).astype(np.float32) + 3
    test = rng.normal(size=(500, 16)).astype(np.float32) + 3
    copies = E.memorization(train[:300], train, test)
    assert copies["memorization_ratio"] == pytest.approx(0.0, abs=1e-3)
    assert copies["copy_share"] == 1.0 and copies["nn_train_distance_median"] < 1e-3
    fresh = E.memorization(rng.normal(size=(500, 16)).astype(np.float32) + 3, train, test)
    assert 0.85 < fresh["memorization_ratio"] < 1.15 and fresh["copy_share"] < 0.05
    assert fresh["test_nn_train_distance_median"] == pytest.approx(np.median(cdist(test, train).min(1)), rel=1e-4)


# -- input checks -------------------------------------------------------------------------------

def test_accepted_sample_shapes_give_the_same_images():
    x = np.random.default_rng(5).uniform(size=(6, 28, 28)).astype(np.float32)
    for shaped in (x, x[..., None], x.reshape(6, 784), x.astype(np.float64)):
        np.testing.assert_array_equal(E.as_images(shaped), x[..., None])
    np.testing.assert_array_equal(E.as_images(x > 0.5), (x > 0.5)[..., None].astype(np.float32))


BAD_SAMPLES = {
    "wrong image size": (np.zeros((10, 32, 32)), "shape (10, 32, 32)"),
    "one image": (np.zeros((1, 28, 28)), "at least"),
    "uint8 pixels": (np.full((10, 28, 28), 255, np.uint8), "divide them by 255"),
    "negative values": (np.full((10, 784), -0.5), "expected [0, 1]"),
    "nan": (np.full((10, 28, 28), np.nan), "NaN"),
    "strings": (np.array([["a"] * 784] * 10), "dtype"),
}


@pytest.mark.parametrize("samples, needle", BAD_SAMPLES.values(), ids=BAD_SAMPLES.keys())
def test_bad_samples_raise_a_usage_error_naming_the_fix(samples, needle):
    with pytest.raises(UsageError, match="samples") as e:
        E.as_images(samples)
    assert needle in str(e.value)


def test_load_samples_refuses_missing_and_non_npy_files(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        E.load_samples(tmp_path / "missing.npy")
    np.savez(tmp_path / "archive.npz", x=np.zeros((4, 28, 28)))
    with pytest.raises(UsageError, match="npz"):
        E.load_samples(tmp_path / "archive.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(UsageError, match="not a NumPy"):
        E.load_samples(tmp_path / "objects.npy")


def test_conv3x3_is_nn_conv_same_with_the_same_gradients():
    x = jax.random.uniform(jax.random.key(0), (2, 9, 7, 3))
    conv = nn.Conv(5, (3, 3), padding="SAME")
    params = conv.init(jax.random.key(1), x)
    np.testing.assert_allclose(Conv3x3(5).apply(params, x), conv.apply(params, x), rtol=1e-5, atol=1e-5)

    def grads(module):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.sin(module.apply(p, x))), argnums=(0, 1)))(params, x)

    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
                           grads(Conv3x3(5)), grads(conv))


# -- with a trained classifier ------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_arrays(mnist):
    return mnist


@pytest.fixture(scope="module")
def trained(quick_classifier):
    """(directory, params, accuracy): conftest's quick classifier (1 epoch on 12,000 images)."""
    return quick_classifier


def test_quick_classifier_learns_and_saved_params_load_back(trained):
    directory, params, accuracy = trained
    assert accuracy > 0.95
    loaded, info = classifier.load(directory)
    assert info["test_accuracy"] == accuracy and info["config"]["epochs"] == 1
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, params)


def test_tampered_or_missing_classifier_is_refused(trained, tmp_path):
    directory, _, _ = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (classifier.PARAMS_FILE, classifier.INFO_FILE):
        (copy / name).write_bytes((directory / name).read_bytes())
    blob = bytearray((copy / classifier.PARAMS_FILE).read_bytes())
    blob[len(blob) // 2] ^= 1
    (copy / classifier.PARAMS_FILE).write_bytes(bytes(blob))
    with pytest.raises(UsageError, match="checksum"):
        classifier.load(copy)
    with pytest.raises(UsageError, match=classifier.TRAIN_COMMAND):
        classifier.load(tmp_path / "empty")


def test_reference_rows_with_a_real_classifier(trained, mnist_arrays):
    _, params, _ = trained
    train, test = mnist_arrays
    ref = E.reference_set(params, train.images[:10000], test.images[:2000])
    rows = dict(E.reference_rows(params, ref, seed=0, n=2000))
    same, real = rows["reference: test vs test"], rows["reference: 2000 train"]
    noise = rows["reference: 2000 uniform noise"]
    assert same["n"] == 2000 and same["note"] and "10000" in same["note"]
    assert same["fid"] < 1e-6 * np.trace(ref.test_sigma)
    assert same["precision"] == same["recall"] == 1.0 and same["memorization_ratio"] == 1.0
    assert 0.5 < real["precision"] <= 1 and 0.5 < real["recall"] <= 1
    assert real["memorization_ratio"] == 0.0 and real["copy_share"] == 1.0
    assert noise["fid"] > 10 * real["fid"] and noise["fid"] > 10 * np.trace(ref.test_sigma) / 100
    assert noise["precision"] < 0.05 and noise["memorization_ratio"] > 2
    for s in (same, real):
        assert s["class_entropy"] > 2.2 and s["classifier_score"] > 8  # balanced, confident digits
        assert sum(s["class_shares"]) == pytest.approx(1.0) and min(s["class_shares"]) > 0.05
    # Scoring the test images through the pixel path gives the test row.
    direct = E.score(E.pixels(test.images[:2000]), params, ref)
    assert direct["fid"] < 1e-6 * np.trace(ref.test_sigma) and direct["memorization_ratio"] == pytest.approx(1.0)
    assert set(direct) >= {"n", "fid", "class_entropy", "classifier_score", "precision", "recall", "class_shares",
                           "memorization_ratio", "nn_train_distance_median", "test_nn_train_distance_median",
                           "copy_share", "note"}
    table = E.format_table(list(rows.items()))
    assert len({len(line) for line in table.splitlines()}) == 1 and "memorization ratio" in table


# -- the scripts --------------------------------------------------------------------------------

def _single_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_score_samples_json_and_bad_input(trained, mnist_arrays, tmp_path, capsys):
    directory, _, _ = trained
    good = tmp_path / "samples.npy"
    np.save(good, E.pixels(mnist_arrays[1].images[:300])[..., 0])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((50, 28, 28), 255, np.uint8))
    script = "experiments.score_samples"
    assert "divide them by 255" in _single_error(run_cli(good, bad, "--classifier-dir", directory, module=script))
    broken = broken_classifier_dir(tmp_path / "b")
    assert cli.run_main(score_samples.main, [str(good), "--classifier-dir", str(broken)]) == 2
    assert classifier.TRAIN_COMMAND in capsys.readouterr().err  # (in-process: one interpreter start less)
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(0).uniform(size=(40, 784)).astype(np.float32))
    proc = run_cli(good, other, "--json", "--classifier-dir", directory, module=script)
    check_ok(proc)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(other)]
    assert lines[1]["n"] == 40 and lines[1]["fid"] > 10 * lines[0]["fid"]  # noise against test digits
    assert set(lines[0]) >= {"file", "n", "fid", "class_entropy", "classifier_score", "precision", "recall"}
    assert lines[0]["n"] == 300 and "10000" in lines[0]["note"] and len(lines[0]["class_shares"]) == 10
    assert lines[0]["fid"] < 5 and lines[0]["precision"] > 0.8  # test images against the test set


def test_mnist_classifier_refuses_to_save_a_weak_classifier(tmp_path):
    out = tmp_path / "clf"
    proc = run_cli("--epochs", "0", "--out", out, "--no-progress", module="experiments.mnist_classifier")
    assert "below 0.99" in _single_error(proc) and "test accuracy" in proc.stdout
    assert not (out / classifier.PARAMS_FILE).exists() and not (out / classifier.INFO_FILE).exists()
