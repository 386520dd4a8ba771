"""The MLP VAEs of the seeds on MNIST: train, evaluate (-ELBO, IWAE), draw, checkpoint.

    python -m experiments.vae_mnist                      # seed002, 20 epochs, into runs/vae_mnist
    python -m experiments.vae_mnist --preset seed000 --out runs/seed000
    python -m experiments.vae_mnist --epochs 30 --resume # continue runs/vae_mnist to 30 epochs

Writes into --out: metrics.json (last), history.csv, samples.npy, samples.png,
reconstructions.png, interpolation.png, elbo.png (+ latent_scatter.png and
manifold.png for a 2-D latent) and checkpoints/. -ELBO and the IWAE bound are
reported (nats per test image) only for a Bernoulli decoder on binary pixels.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import cli, data, latent, plots, run, vae
from genjax.models import mlp_vae
from genjax.presets import PRESETS, VAEConfig, make_optimizer
from genjax.train import TrainState, fast_compiler_options, make_epoch, num_batches, replicate

DEFAULT_OUT = Path("runs/vae_mnist")
# Fields a resumed run may change: how long to train, and what to evaluate and draw afterwards.
RESUMABLE_CHANGES = ("epochs", "iwae_k", "num_samples", "interpolation")

parser = run.parser(__doc__, "python -m experiments.vae_mnist", DEFAULT_OUT, PRESETS, "seed002")
run.preset_flag(parser, "--latent-dim", PRESETS, type=cli.positive_int("--latent-dim"), help="latent dimensions")
run.preset_flag(parser, "--hidden", PRESETS, type=cli.widths("--hidden"),
                help="encoder hidden widths, comma-separated; the decoder mirrors them")
run.preset_flag(parser, "--beta", PRESETS, type=cli.non_negative_float("--beta"), help="KL weight (beta-VAE; 1 is the VAE)")
run.preset_flag(parser, "--kl-warmup-epochs", PRESETS, type=cli.non_negative_int("--kl-warmup-epochs"),
                help="epochs of linear KL annealing (0: none)")
run.preset_flag(parser, "--pixels", PRESETS, choices=data.UNIT_PIXEL_MODES,
                help="float (x/255), threshold (x/255 > 0.5) or stochastic (a Bernoulli draw each step)")
run.preset_flag(parser, "--iwae-k", PRESETS, type=cli.positive_int("--iwae-k"),
                help="importance samples per test image for the IWAE bound")
run.preset_flag(parser, "--num-samples", PRESETS, type=cli.positive_int("--num-samples"),
                help="prior samples saved in samples.npy")
run.preset_flag(parser, "--interpolation", PRESETS, choices=("linear", "slerp"),
                help="latent interpolation in interpolation.png")


def draw_pictures(out: Path, model, params, config: VAEConfig, test: data.ImageSet, x_test, key) -> np.ndarray:
    """samples.png, reconstructions.png, interpolation.png (+ latent_scatter.png, manifold.png in 2-D);
    returns the ``num_samples`` prior sample means for samples.npy."""
    shape = test.images.shape[1:3]
    k_samples, k_recon = jax.random.split(key)
    means = np.asarray(vae.prior_sample_means(model, params, k_samples, max(config.num_samples, 64)))
    means = means.reshape(-1, *shape)
    plots.save_grid(out / "samples.png", means[:64], 8, 8, f"{config.preset}: prior samples (Bernoulli means)")
    means = means[: config.num_samples]
    originals = x_test[:12]
    logits, _, _ = model.apply({"params": params}, originals, k_recon)
    recon = np.asarray(jax.nn.sigmoid(logits)).reshape(-1, *shape)
    plots.save_reconstructions(out / "reconstructions.png", np.asarray(originals)[..., 0], recon,
                               "test digits (top) and reconstructions (bottom)")
    z = vae.encode_means(model, params, x_test[:20])
    rows = [vae.decode_means(model, params, latent.interpolate(z[2 * i], z[2 * i + 1], 10, config.interpolation))
            for i in range(5)]
    plots.save_grid(out / "interpolation.png", np.concatenate([np.asarray(r) for r in rows]).reshape(-1, *shape),
                    5, 10, f"{config.interpolation} interpolation between encoded test digits")
    if config.latent_dim == 2:
        z_all = np.asarray(vae.encode_means(model, params, x_test))
        plots.save_latent_scatter(out / "latent_scatter.png", z_all, test.labels, "test set: latent means by digit")
        grid = np.asarray(vae.decode_means(model, params, jnp.asarray(plots.manifold_grid(20)))).reshape(-1, *shape)
        plots.save_grid(out / "manifold.png", grid, 20, 20, "decoded latent grid, z in [-3, 3]^2")
    return means


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS)
    r = run.Run(args, config, resumable=RESUMABLE_CHANGES)
    # Data: uint8 on every device; pixels are made inside the compiled step.
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    train_data = replicate({"image": jnp.asarray(train.images)}, mesh)
    x_test = replicate(data.fixed_eval_pixels(test.images, config.pixels), mesh)

    # Model, loss, optimizer, compiled epoch.
    model = mlp_vae.from_config(config, train.images.shape[1:])
    keys = vae.seed_keys(config.seed, config.prng)
    run_key, eval_key = keys["run"], keys["eval"]
    params = vae.init_params(model, keys["init"], train.images.shape[1:])
    tx = make_optimizer(config.optimizer, config.lr)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    step = vae.make_vae_step(model, config.likelihood, config.pixels, config.optimizer, steps_per_epoch)
    epoch_fn = make_epoch(step(vae.hyperparameters(config)), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    state = replicate(TrainState.create(params, tx, keys["state"]), mesh)
    likelihood = vae.reports_likelihood(config.likelihood, config.pixels)

    def evaluate(state):
        m = vae.evaluate(model, state.params, x_test, eval_key, config.likelihood, mesh=mesh)
        result = {"loss": m["recon"] + config.beta * m["kl"], "recon": m["recon"], "kl": m["kl"]}
        return {**result, "neg_elbo": m["neg_elbo"]} if likelihood else result

    # The loop, checkpointed after each epoch; then the final parameters' evaluation.
    state, history = r.fit(state, epoch_fn, train_data, run_key, evaluate, steps_per_epoch)
    final = run.last_test_metrics(history, evaluate, state)
    metrics = {**r.summary(history, mesh), "pixels": config.pixels, "binarization": data.BINARIZATION[config.pixels],
               "likelihood": config.likelihood,
               "test_loss": final["loss"], "test_recon": final["recon"], "test_kl": final["kl"]}
    if likelihood:
        k = config.iwae_k
        t0 = time.perf_counter()
        iw = jax.device_get(vae.iwae_nll(model, state.params, x_test, jax.random.fold_in(eval_key, 1), k,
                                          vae.iwae_chunk_size(k, x_test[0].size), mesh))
        metrics.update(test_neg_elbo=final["neg_elbo"], test_nll_iwae=float(iw["nll_iwae"]),
                       test_neg_elbo_k_samples=float(iw["neg_elbo"]), iwae_k=k,
                       iwae_seconds=round(time.perf_counter() - t0, 3))

    # Pictures and samples (one process), then metrics.json last.
    if r.writes_files:
        means = draw_pictures(r.out, model, jax.device_get(state.params), config, test, x_test, keys["draw"])
        np.save(r.out / "samples.npy", means.astype(np.float32))
        curve = "neg_elbo" if likelihood else "loss"
        train_curve = [row["train_recon"] + row["train_kl"] if likelihood else row["train_loss"] for row in history]
        plots.save_curves(r.out / "elbo.png", [row["epoch"] for row in history],
                          {"train": train_curve, "test": [row[f"test_{curve}"] for row in history]},
                          "-ELBO (nats/image)" if likelihood else "loss per image",
                          f"{config.preset}, binarization: {data.BINARIZATION[config.pixels].split(' (')[0]}")
    return r.finish(metrics, history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
