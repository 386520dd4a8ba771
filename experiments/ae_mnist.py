"""Deterministic autoencoders on MNIST, beside a VAE: why an AE's latent space samples badly.

    python -m experiments.ae_mnist                          # seed004: conv AE, 2-D latent, BCE, 10 epochs
    python -m experiments.ae_mnist --preset seed003 --out runs/ae_seed003   # MLP 784-400-20, MSE
    python -m experiments.ae_mnist --noise 0.3 --out runs/dae_mnist         # a denoising AE

The evaluator's digit classifier scores the samples (trained and cached on first use; --no-score skips it).
Trains the AE (seed 003's MLP 784-400-20 or seed 004's conv AE; --likelihood bernoulli (BCE) or mse, summed
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
import numpy as np

from genjax import data
from genjax.errors import UsageError
from genjax.evaluation import evaluator, plots, report
from genjax.evaluation import scorer as scoring
from genjax.presets import AE_PRESETS, PRESETS
from genjax.recipes.autoencoder import Autoencoder, add_likelihood_flag
from genjax.recipes.vae import VAE
from genjax.runs import cli, run

PRESETS_MNIST = {name: c for name, c in AE_PRESETS.items() if c.dataset == "mnist"}
DEFAULT_OUT = Path("runs/ae_mnist")
FIT_CODES = 10_000  # training images whose codes the fitted Gaussian takes its mean and covariance from
SAMPLERS = {"ae_prior": "AE, z ~ N(0, I)", "ae_fitted": "AE, z ~ N(mean, cov of its codes)",
            "vae_prior": "VAE, z ~ N(0, I)"}
COLUMNS = (("sampler", "samples", ""), ("fid", "FID", ".2f"), ("class_entropy", "class entropy", ".3f"),
           ("classifier_score", "score", ".2f"), ("precision", "precision", ".3f"), ("recall", "recall", ".3f"))

parser = run.parser(__doc__, "python -m experiments.ae_mnist", DEFAULT_OUT, PRESETS_MNIST, "seed004")
add_likelihood_flag(parser, PRESETS_MNIST)
run.preset_flag(parser, "--latent-dim", PRESETS_MNIST, type=cli.positive_int("--latent-dim"), help="code size")
run.preset_flag(parser, "--hidden", PRESETS_MNIST, type=cli.widths("--hidden"),
                aliases={"--widths": {"type": cli.widths("--widths")}},
                help="MLP: hidden widths; conv: channels of each stride-2 convolution (comma-separated)")
run.preset_flag(parser, "--noise", PRESETS_MNIST, type=cli.non_negative_float("--noise"),
                help="denoising: std of the Gaussian noise added to the input (0: a plain AE)")
run.preset_flag(parser, "--pixels", PRESETS_MNIST, choices=data.UNIT_PIXEL_MODES,
                help="float (x/255), threshold (x/255 > 0.5) or stochastic (a Bernoulli draw each step)")
run.preset_flag(parser, "--num-samples", PRESETS_MNIST, type=cli.positive_int("--num-samples"),
                help="draws decoded and scored per sampler")
run.preset_flag(parser, "--vae-preset", PRESETS_MNIST, choices=tuple(PRESETS),
                help="the VAE compared (genjax.presets.PRESETS), given the AE's latent size")
scoring.add_flags(parser)


def chi_mean(d: int) -> float:
    """E|z| for z ~ N(0, I_d): sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2)."""
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def draw_pictures(out: Path, ae: Autoencoder, vae: VAE, test, samples: dict, scores: dict) -> None:
    for name, images in samples.items():
        np.save(out / f"samples_{name}.npy", images[..., 0].astype(np.float32))
        fid = f": FID {scores[name]['fid']:.1f}" if name in scores else ""
        plots.save_grid(out / f"samples_{name}.png", images[:64], 8, 8, f"{SAMPLERS[name]}{fid}")
    x = test.images[:12]
    rows = [ae.test_pixels(data.ImageSet(x, None)), ae.reconstruct(x), vae.reconstruct(x)]
    plots.save_grid(out / "reconstructions.png", np.concatenate([np.asarray(r) for r in rows])[..., 0], 3, 12,
                    "test digits; the AE's reconstructions; the VAE's (decoded posterior means)")
    if ae.config.latent_dim == 2:
        grid = plots.manifold_grid(20)
        for prefix, m in (("", ae), ("vae_", vae)):
            kind = "AE codes" if not prefix else "VAE posterior means"
            plots.save_latent_scatter(out / f"{prefix}latent_scatter.png", m.encode(test.images), test.labels,
                                      f"test set: {kind} by digit; dashed: N(0, I)'s 1- and 2-sigma circles", (1, 2))
            plots.save_grid(out / f"{prefix}manifold.png", m.decode(grid)[..., 0], 20, 20,
                            f"{'VAE' if prefix else 'AE'}: decoded latent grid, z in [-3, 3]^2")


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS_MNIST)
    if config.num_samples < evaluator.MIN_SAMPLES:
        raise UsageError(f"--num-samples {config.num_samples}: the evaluator needs at least {evaluator.MIN_SAMPLES}")
    scorer = scoring.from_args(args, args.data_dir)  # before anything is written: it scores the samples
    r = run.Run(args, config, resumable=("epochs", "num_samples"))
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)

    # The autoencoder, then the VAE it is compared with: same latent size, epochs, batches and seed.
    ae = Autoencoder(config).train(train, test, run=r, mesh=mesh, name="ae", progress=r.progress)
    vae_config = dataclasses.replace(PRESETS[config.vae_preset], latent_dim=config.latent_dim, epochs=config.epochs,
                                     batch_size=config.batch_size, seed=config.seed)
    vae = VAE(vae_config).train(train, test, run=r, mesh=mesh, name="vae", progress=r.progress, primary=False)

    # Decoded draws from three latent distributions, scored by the evaluator.
    k_prior, k_fitted, k_vae = jax.random.split(ae.keys()["draw"], 3)
    n = config.num_samples
    samples = {"ae_prior": ae.sample(n, k_prior),
               "ae_fitted": ae.sample(n, k_fitted, fitted_to=train.images[:FIT_CODES]),
               "vae_prior": vae.sample(n, k_vae)}
    if scorer is not None:
        scorer = scorer.with_reference(train.images, test.images)
    scores = {name: scorer.score(s) for name, s in samples.items()} if scorer else {}

    z_ae, z_vae = ae.encode(test.images), vae.encode(test.images)
    final, vae_final = (run.last_test_metrics(m.history, m.make_evaluate(test, mesh), m.state) for m in (ae, vae))
    metrics = {**r.summary(ae.history, mesh), "model": config.model, "likelihood": config.likelihood,
               "noise": config.noise,
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
        draw_pictures(r.out, ae, vae, test, samples, scores)
        if scores:
            rows = [{"sampler": SAMPLERS[k], **s} for k, s in scores.items()]
            report.write_tables(r.out, "samples", rows, COLUMNS,
                                f"{config.preset} AE ({config.model}, latent {config.latent_dim}, {config.likelihood}) "
                                f"vs {vae_config.preset} VAE, {config.epochs} epochs, seed {config.seed}: {n} decoded "
                                "draws each, scored by genjax.evaluation.evaluator")
        epochs = [row["epoch"] for row in ae.history]
        plots.save_curves(r.out / "losses.png", epochs, {"train": [row["train_loss"] for row in ae.history],
                                                         "test": [row["test_loss"] for row in ae.history]},
                          f"AE {config.likelihood} per image", f"{config.preset} autoencoder")
    return r.finish(metrics, ae.history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
