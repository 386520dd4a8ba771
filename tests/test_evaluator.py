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
from genjax import data
from genjax.errors import UsageError
from genjax.evaluation import classifier
from genjax.evaluation import evaluator as E
from genjax.evaluation.scorer import Scorer
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


@pytest.fixture(scope="module")
def float_reference(trained, mnist_arrays):
    """The greyscale reference of 10,000 training and the first 2,000 test images."""
    _, params, _ = trained
    train, test = mnist_arrays
    return E.reference_set(params, train.images[:10000], test.images[:2000])


def test_reference_rows_are_real_floors(trained, mnist_arrays, float_reference):
    _, params, _ = trained
    _, test = mnist_arrays
    ref = float_reference
    rows = dict(E.reference_rows(params, ref, seed=0, n=2000))
    assert list(rows) == ["floor: 2000 train vs test", "floor: test half vs other half (1000)",
                          "reference: 2000 uniform noise"]
    real, half, noise = rows.values()
    assert real["n"] == 2000 and half["n"] == 1000 and real["note"] and "10000" in real["note"]
    for s in (real, half):  # measured, not zero by construction, and far below the noise
        assert 0 < s["fid"] < noise["fid"] / 10 and s["fid"] > 1e-4 * np.trace(ref.test_sigma)
        assert 0.5 < s["precision"] <= 1 and 0.5 < s["recall"] <= 1
        assert 0.8 < s["memorization_ratio"] < 1.25 and s["copy_share"] < 0.05  # no image is its own neighbour
        assert s["class_entropy"] > 2.2 and s["classifier_score"] > 8  # balanced, confident digits
        assert sum(s["class_shares"]) == pytest.approx(1.0) and min(s["class_shares"]) > 0.05
    # The train floor's yardstick: the test images against the 8,000 training images not picked.
    assert real["test_nn_train_distance_median"] > np.median(ref.test_train_nn)
    assert noise["fid"] > 10 * np.trace(ref.test_sigma) / 100 and noise["precision"] < 0.05
    assert noise["memorization_ratio"] > 2
    assert {s["reference_pixels"] for s in rows.values()} == {data.BINARIZATION["float"]}
    # The same seed, the same rows.
    again = dict(E.reference_rows(params, ref, seed=0, n=2000))
    assert again["floor: 2000 train vs test"]["fid"] == real["fid"]
    # Scoring the reference's own test images through the pixel path gives FID 0 and ratio 1.
    direct = E.score(E.unit_pixels(test.images[:2000]), params, ref)
    assert direct["fid"] < 1e-6 * np.trace(ref.test_sigma) and direct["memorization_ratio"] == pytest.approx(1.0)
    assert set(direct) >= {"n", "fid", "class_entropy", "classifier_score", "precision", "recall", "class_shares",
                           "memorization_ratio", "nn_train_distance_median", "test_nn_train_distance_median",
                           "copy_share", "note", "reference_pixels"}
    table = E.format_table(list(rows.items()))
    assert len({len(line) for line in table.splitlines()}) == 1 and "memorization ratio" in table


def test_binarized_references_score_binarized_digits(trained, mnist_arrays, float_reference):
    _, params, _ = trained
    train, test = mnist_arrays
    binary = E.reference_set(params, train.images[:10000], test.images[:2000], pixels="threshold")
    assert binary.pixels == "threshold" and float_reference.pixels == "float"
    assert not np.allclose(binary.test_features, float_reference.test_features)
    held_out = test.images[2000:4000]  # digits in neither reference
    grey, thresholded = E.unit_pixels(held_out), E.unit_pixels(held_out, "threshold")
    assert set(np.unique(thresholded)) == {0.0, 1.0}
    np.testing.assert_array_equal(thresholded, (held_out / 255 > 0.5).astype(np.float32))
    on_binary, on_grey = E.score(thresholded, params, binary), E.score(thresholded, params, float_reference)
    assert on_binary["fid"] < on_grey["fid"] / 2 and on_binary["reference_pixels"] == data.BINARIZATION["threshold"]
    assert E.score(grey, params, float_reference)["fid"] < E.score(grey, params, binary)["fid"] / 2
    rows = dict(E.reference_rows(params, binary, seed=0, n=600))
    assert list(rows) == ["floor: 600 train vs test", "floor: 600 test vs the other 1400", "reference: 600 uniform noise"]
    real, half, noise = rows.values()
    assert {s["reference_pixels"] for s in rows.values()} == {data.BINARIZATION["threshold"]}
    assert 0 < real["fid"] < noise["fid"] / 10 and 0 < half["fid"] < noise["fid"] / 10
    assert 0.8 < real["memorization_ratio"] < 1.25
    assert set(np.unique(E.noise_images(np.random.default_rng(0), 3, "threshold"))) == {0.0, 1.0}


def test_stochastic_reference_is_one_fixed_draw(trained, mnist_arrays):
    _, params, _ = trained
    train, test = mnist_arrays
    images = test.images[:500]
    draw = E.unit_pixels(images, "stochastic")
    np.testing.assert_array_equal(draw, E.unit_pixels(images, "stochastic"))
    np.testing.assert_array_equal(draw, np.asarray(data.fixed_eval_pixels(images, "stochastic")))  # the model's
    assert set(np.unique(draw)) == {0.0, 1.0} and not np.array_equal(draw, E.unit_pixels(images, "stochastic", 1))
    assert draw.mean() == pytest.approx(images.mean() / 255, abs=0.01)
    a, b = (E.reference_set(params, train.images[:1000], images, pixels="stochastic") for _ in range(2))
    assert a.pixels == "stochastic"
    np.testing.assert_array_equal(a.test_features, b.test_features)
    np.testing.assert_array_equal(a.train_features, b.train_features)
    np.testing.assert_array_equal(a.test_train_nn, b.test_train_nn)


def test_scorer_keeps_one_reference_per_pixel_model(trained, mnist_arrays):
    directory, _, _ = trained
    train, test = mnist_arrays
    scorer = Scorer(directory, train.images[:2000], test.images[:500], train_if_missing=False)
    samples = E.unit_pixels(test.images[500:700], "threshold")
    s, probs = scorer.score_with_probabilities(samples, pixels="threshold")
    assert s["reference_pixels"] == data.BINARIZATION["threshold"] and probs.shape == (200, 10)
    assert scorer.reference_for("threshold") is scorer.reference_for("threshold")
    assert scorer.reference is scorer.reference_for("float") and scorer.reference.pixels == "float"
    assert scorer.score(samples)["reference_pixels"] == data.BINARIZATION["float"]
    assert scorer.score(samples, "threshold")["fid"] == s["fid"]
    other = scorer.with_reference(train.images[:1000], test.images[:400])
    assert len(other.reference_for("threshold").test_features) == 400
    for bad in ("signed", "binary"):
        with pytest.raises(UsageError, match="choose one of float, threshold, stochastic"):
            scorer.score(samples, pixels=bad)
        with pytest.raises(UsageError, match=bad):
            E.reference_set(None, train.images[:10], test.images[:10], pixels=bad)


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
    np.save(good, E.unit_pixels(mnist_arrays[1].images[:300], "threshold")[..., 0])  # a binary model's samples
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((50, 28, 28), 255, np.uint8))
    script = "experiments.score_samples"
    assert "divide them by 255" in _single_error(run_cli(good, bad, "--classifier-dir", directory, module=script))
    broken = broken_classifier_dir(tmp_path / "b")
    assert cli.run_main(score_samples.main, [str(good), "--classifier-dir", str(broken)]) == 2
    assert classifier.TRAIN_COMMAND in capsys.readouterr().err  # (in-process: one interpreter start less)
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(0).uniform(size=(40, 784)).astype(np.float32))
    assert "invalid choice" in _single_error(run_cli(good, "--pixels", "signed", module=script))
    proc = run_cli(good, other, "--json", "--pixels", "threshold", "--classifier-dir", directory, module=script)
    check_ok(proc)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(other)]
    assert lines[1]["n"] == 40 and lines[1]["fid"] > 10 * lines[0]["fid"]  # noise against test digits
    assert set(lines[0]) >= {"file", "n", "fid", "class_entropy", "classifier_score", "precision", "recall"}
    assert lines[0]["n"] == 300 and "10000" in lines[0]["note"] and len(lines[0]["class_shares"]) == 10
    assert lines[0]["fid"] < 5 and lines[0]["precision"] > 0.8  # test images against the test set
    assert {line["reference_pixels"] for line in lines} == {data.BINARIZATION["threshold"]}


def test_mnist_classifier_refuses_to_save_a_weak_classifier(tmp_path):
    out = tmp_path / "clf"
    proc = run_cli("--epochs", "0", "--out", out, "--no-progress", module="experiments.mnist_classifier")
    assert "below 0.99" in _single_error(proc) and "test accuracy" in proc.stdout
    assert not (out / classifier.PARAMS_FILE).exists() and not (out / classifier.INFO_FILE).exists()
