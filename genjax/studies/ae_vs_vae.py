"""An autoencoder beside a VAE on MNIST (``python -m experiments.ae_mnist``): why an AE's latent
space samples badly. The AE recipe, then the VAE recipe with the AE's latent size, epochs, batches
and seed; decoded draws from three latent distributions (the AE's z ~ N(0, I), a Gaussian fitted to
its codes, the VAE's prior) scored by the evaluator; the pictures and latent statistics."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import jax
import numpy as np

from genjax import data
from genjax.errors import UsageError
from genjax.evaluation import evaluator, plots, report
from genjax.evaluation import scorer as scoring
from genjax.presets import AE_PRESETS, PRESETS
from genjax.recipes import autoencoder
from genjax.recipes.autoencoder import Autoencoder
from genjax.recipes.vae import VAE
from genjax.runs import cli, run

PRESETS_MNIST = {name: c for name, c in AE_PRESETS.items() if c.dataset == "mnist"}
FIT_CODES = 10_000  # training images whose codes the fitted Gaussian takes its mean and covariance from
SAMPLERS = {"ae_prior": "AE, z ~ N(0, I)", "ae_fitted": "AE, z ~ N(mean, cov of its codes)",
            "vae_prior": "VAE, z ~ N(0, I)"}
COLUMNS = (("sampler", "samples", ""), ("fid", "FID", ".2f"), ("class_entropy", "class entropy", ".3f"),
           ("classifier_score", "score", ".2f"), ("precision", "precision", ".3f"), ("recall", "recall", ".3f"))


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The AE's flags (likelihood, noise, latent size, widths, pixels), the sample count, the VAE
    compared and the scorer's."""
    autoencoder.add_flags(parser, PRESETS_MNIST)
    run.preset_flag(parser, "--latent-dim", PRESETS_MNIST, type=cli.positive_int("--latent-dim"), help="code size")
    run.preset_flag(parser, "--hidden", PRESETS_MNIST, type=cli.widths("--hidden"),
                    aliases={"--widths": {"type": cli.widths("--widths")}},
                    help="MLP: hidden widths; conv: channels of each stride-2 convolution (comma-separated)")
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
    """Each sampler's draws (.npy and .png), reconstructions.png and, for a 2-D code, the latent
    scatters and manifolds of both models."""
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


def cli_run(args: argparse.Namespace) -> dict:
    """The whole run of ``python -m experiments.ae_mnist`` (see its docstring): the AE, the VAE, the
    three samplers scored, the pictures, metrics.json last."""
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
    # The AE's decodes are greyscale whatever it trained on; the VAE's samples in its own pixel model
    # (a binary-pixel VAE's Bernoulli draws of the same z's).
    vae_scored, vae_pixels = vae.scored_from(samples["vae_prior"], k_vae)
    scored = {"ae_prior": (samples["ae_prior"], "float"), "ae_fitted": (samples["ae_fitted"], "float"),
              "vae_prior": (vae_scored, vae_pixels)}
    scores = {name: scorer.score(*scored[name]) for name in samples} if scorer else {}

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
                                "draws each, scored by genjax.evaluation.evaluator (the AE's decodes against greyscale "
                                "MNIST, the VAE's samples in its training pixels)")
        autoencoder.save_loss_curves(r.out, ae, f"{config.preset} autoencoder")
    return r.finish(metrics, ae.history)


def cli_script(doc: str, prog: str, default_out: Path, default_preset: str = "seed004"):
    """(parser, experiment) of the AE-beside-a-VAE script."""
    parser = run.parser(doc, prog, default_out, PRESETS_MNIST, default_preset)
    add_flags(parser)
    return parser, cli_run


__all__ = ["PRESETS_MNIST", "add_flags", "chi_mean", "cli_run", "cli_script", "draw_pictures"]
