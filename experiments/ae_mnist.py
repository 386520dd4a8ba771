"""Deterministic autoencoders on MNIST, beside a VAE: why an AE's latent space samples badly.

    python -m experiments.ae_mnist                          # seed004: conv AE, 2-D latent, BCE, 10 epochs
    python -m experiments.ae_mnist --preset seed003 --out runs/ae_seed003   # MLP 784-400-20, MSE
    python -m experiments.ae_mnist --noise 0.3 --out runs/dae_mnist         # a denoising AE

Needs the evaluator's digit classifier (`python -m experiments.mnist_classifier`, once).
Trains the AE (seed 003's MLP 784-400-20 or seed 004's conv AE; --recon bce or mse, summed
over pixels; --noise > 0: a denoising AE, input clip(x + noise * eps, 0, 1), target the clean
x) into --out/ae, then a VAE into --out/vae: --vae-preset (default seed003, 784-400-Z with a
Bernoulli decoder, its own learning rate) with the AE's latent size Z, epochs, batch size
and seed: the run `python -m experiments.vae_mnist` makes with those settings. It then decodes
--num-samples draws from three latent distributions: z ~ N(0, I) for the AE, z ~ a Gaussian
with the mean and covariance of the AE's codes of 10,000 training images, and z ~ N(0, I)
for the VAE, and scores each sample set with the evaluator (FID, class entropy, ...).

Writes into --out: metrics.json (last; the scores under "samples"), samples.md/.csv,
samples_{ae_prior,ae_fitted,vae_prior}.npy (N x 28 x 28 in [0, 1]) and .png,
reconstructions.png (test digits, the AE's, the VAE's), losses.png; for a 2-D latent
latent_scatter.png (the AE's test codes by digit, with N(0, I)'s 1- and 2-sigma circles),
vae_latent_scatter.png, manifold.png and vae_manifold.png (decodes of a grid over [-3, 3]^2);
ae/ and vae/ hold each model's history.csv and checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import autoencoder, classifier, cli, data, evaluator, plots, report, run, vae
from genjax.errors import UsageError
from genjax.presets import AE_PRESETS, PRESETS
from genjax.train import num_batches, replicate

PRESETS_MNIST = {name: c for name, c in AE_PRESETS.items() if c.dataset == "mnist"}
DEFAULT_OUT = Path("runs/ae_mnist")
FIT_CODES = 10_000  # training images whose codes the fitted Gaussian takes its mean and covariance from
SAMPLERS = {"ae_prior": "AE, z ~ N(0, I)", "ae_fitted": "AE, z ~ N(mean, cov of its codes)",
            "vae_prior": "VAE, z ~ N(0, I)"}
COLUMNS = (("sampler", "samples", ""), ("fid", "FID", ".2f"), ("class_entropy", "class entropy", ".3f"),
           ("classifier_score", "score", ".2f"), ("precision", "precision", ".3f"), ("recall", "recall", ".3f"))

parser = run.parser(__doc__, "python -m experiments.ae_mnist", DEFAULT_OUT, PRESETS_MNIST, "seed004")
run.preset_flag(parser, "--recon", PRESETS_MNIST, choices=autoencoder.RECONSTRUCTIONS,
                help="reconstruction loss: bce (binary cross-entropy) or mse (squared error), summed over pixels")
run.preset_flag(parser, "--latent-dim", PRESETS_MNIST, type=cli.positive_int("--latent-dim"), help="code size")
run.preset_flag(parser, "--widths", PRESETS_MNIST, type=cli.widths("--widths"),
                help="MLP: hidden widths; conv: channels of each stride-2 convolution (comma-separated)")
run.preset_flag(parser, "--noise", PRESETS_MNIST, type=cli.non_negative_float("--noise"),
                help="denoising: std of the Gaussian noise added to the input (0: a plain AE)")
run.preset_flag(parser, "--pixels", PRESETS_MNIST, choices=data.UNIT_PIXEL_MODES,
                help="float (x/255), threshold (x/255 > 0.5) or stochastic (a Bernoulli draw each step)")
run.preset_flag(parser, "--num-samples", PRESETS_MNIST, type=cli.positive_int("--num-samples"),
                help="draws decoded and scored per sampler")
run.preset_flag(parser, "--vae-preset", PRESETS_MNIST, choices=tuple(PRESETS),
                help="the VAE compared (genjax.presets.PRESETS), given the AE's latent size")
classifier.add_dir_flag(parser)


def chi_mean(d: int) -> float:
    """E|z| for z ~ N(0, I_d): sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2)."""
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def draw_pictures(out: Path, model, params, vae_model, vae_params, x_test, labels, samples, scores, config):
    shape = x_test.shape[1:3]
    for name, images in samples.items():
        np.save(out / f"samples_{name}.npy", images[..., 0].astype(np.float32))
        plots.save_grid(out / f"samples_{name}.png", images[:64], 8, 8,
                        f"{SAMPLERS[name]}: FID {scores[name]['fid']:.1f}")
    x = x_test[:12]
    rows = [np.asarray(x), np.asarray(autoencoder.reconstruct(model, params, x)),
            np.asarray(autoencoder.reconstruct(vae_model, vae_params, x))]
    plots.save_grid(out / "reconstructions.png", np.concatenate(rows)[..., 0], 3, 12,
                    "test digits; the AE's reconstructions; the VAE's (decoded posterior means)")
    if config.latent_dim == 2:
        grid = jnp.asarray(plots.manifold_grid(20))
        for prefix, m, p in (("", model, params), ("vae_", vae_model, vae_params)):
            z = np.asarray(autoencoder.codes(m, p, x_test))
            kind = "AE codes" if not prefix else "VAE posterior means"
            plots.save_latent_scatter(out / f"{prefix}latent_scatter.png", z, labels,
                                      f"test set: {kind} by digit; dashed: N(0, I)'s 1- and 2-sigma circles", (1, 2))
            decoded = np.asarray(jax.nn.sigmoid(m.apply({"params": p}, grid, method="decode")))
            plots.save_grid(out / f"{prefix}manifold.png", decoded.reshape(-1, *shape), 20, 20,
                            f"{'VAE' if prefix else 'AE'}: decoded latent grid, z in [-3, 3]^2")


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS_MNIST)
    if config.num_samples < evaluator.MIN_SAMPLES:
        raise UsageError(f"--num-samples {config.num_samples}: the evaluator needs at least {evaluator.MIN_SAMPLES}")
    clf_params, _ = classifier.load(args.classifier_dir)  # before anything is written: it scores the samples
    r = run.Run(args, config, resumable=("epochs", "num_samples"))
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    shape = train.images.shape[1:]
    train_data = replicate({"image": jnp.asarray(train.images)}, mesh)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    keys = vae.seed_keys(config.seed, config.prng)

    # The autoencoder.
    x_test = replicate(data.fixed_eval_pixels(test.images, config.pixels), mesh)
    model = autoencoder.from_config(config, shape)
    epoch_fn, evaluate = autoencoder.make_ae_training(model, config, x_test, mesh, keys["eval"])
    state = replicate(autoencoder.init_state(model, config, shape), mesh)
    state, history = r.fit(state, epoch_fn, train_data, keys["run"], evaluate, steps_per_epoch, name="ae")

    # The VAE it is compared with: same latent size, epochs, batches and seed.
    vae_config = dataclasses.replace(PRESETS[config.vae_preset], latent_dim=config.latent_dim, epochs=config.epochs,
                                     batch_size=config.batch_size, seed=config.seed)
    x_test_vae = replicate(data.fixed_eval_pixels(test.images, vae_config.pixels), mesh)
    vae_model, vae_state, vae_epoch, vae_evaluate = autoencoder.make_vae_training(
        vae_config, shape, x_test_vae, steps_per_epoch, mesh, keys["eval"])
    vae_state, vae_history = r.fit(replicate(vae_state, mesh), vae_epoch, train_data, keys["run"], vae_evaluate,
                                   steps_per_epoch, name="vae")

    # Decoded draws from three latent distributions, scored by the evaluator.
    params, vae_params = jax.device_get(state.params), jax.device_get(vae_state.params)
    k_prior, k_fitted, k_vae = jax.random.split(keys["draw"], 3)
    x_fit = data.fixed_eval_pixels(train.images[:FIT_CODES], config.pixels)
    mean, chol = autoencoder.fit_gaussian(autoencoder.codes(model, params, x_fit))
    n = config.num_samples
    samples = {"ae_prior": autoencoder.sample_means(model, params, k_prior, n, shape),
               "ae_fitted": autoencoder.sample_means(model, params, k_fitted, n, shape, mean, chol),
               "vae_prior": vae.prior_sample_means(vae_model, vae_params, k_vae, n).reshape(n, *shape)}
    samples = {name: np.asarray(s) for name, s in samples.items()}
    reference = evaluator.reference_set(clf_params, train.images, test.images)
    scores = {name: evaluator.score(s, clf_params, reference) for name, s in samples.items()}

    z_ae = np.asarray(autoencoder.codes(model, params, x_test))
    z_vae = np.asarray(autoencoder.codes(vae_model, vae_params, x_test_vae))
    final, vae_final = (run.last_test_metrics(h, e, s) for h, e, s in
                        ((history, evaluate, state), (vae_history, vae_evaluate, vae_state)))
    metrics = {**r.summary(history, mesh), "model": config.model, "recon": config.recon, "noise": config.noise,
               "pixels": config.pixels, "binarization": data.BINARIZATION[config.pixels],
               **{f"test_{k}": v for k, v in final.items()},
               "vae": {"preset": vae_config.preset, "latent_dim": vae_config.latent_dim,
                       "likelihood": vae_config.likelihood, "pixels": vae_config.pixels,
                       **{f"test_{k}": v for k, v in vae_final.items()}},
               # N(0, I) has per-dimension mean 0 and std 1, and |z| about sqrt(D): how far the codes are from it.
               "latent": {"ae_code_mean": z_ae.mean(0).tolist(), "ae_code_std": z_ae.std(0).tolist(),
                          "ae_code_norm_mean": float(np.linalg.norm(z_ae, axis=1).mean()),
                          "vae_mean_std": z_vae.std(0).tolist(),
                          "vae_mean_norm_mean": float(np.linalg.norm(z_vae, axis=1).mean()),
                          "prior_norm_mean": chi_mean(config.latent_dim)},
               "samples": scores}
    if r.writes_files:
        draw_pictures(r.out, model, params, vae_model, vae_params, np.asarray(x_test), test.labels, samples, scores,
                      config)
        report.write_tables(r.out, "samples", [{"sampler": SAMPLERS[k], **s} for k, s in scores.items()], COLUMNS,
                            f"{config.preset} AE ({config.model}, latent {config.latent_dim}, {config.recon}) vs "
                            f"{vae_config.preset} VAE, {config.epochs} epochs, seed {config.seed}: {n} decoded draws "
                            "each, scored by genjax.evaluator")
        epochs = [row["epoch"] for row in history]
        plots.save_curves(r.out / "losses.png", epochs, {"train": [row["train_loss"] for row in history],
                                                         "test": [row["test_loss"] for row in history]},
                          f"AE {config.recon} per image", f"{config.preset} autoencoder")
    return r.finish(metrics, history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
