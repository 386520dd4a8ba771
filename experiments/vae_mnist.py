"""The MLP VAEs of the seeds on MNIST: train, evaluate (-ELBO, IWAE), draw, checkpoint.

    python -m experiments.vae_mnist                      # seed002, 20 epochs, into runs/vae_mnist
    python -m experiments.vae_mnist --preset seed000 --out runs/seed000
    python -m experiments.vae_mnist --epochs 30 --resume # continue runs/vae_mnist to 30 epochs

The story in order: config -> data -> model and loss -> compiled epoch -> loop
(checkpoint each epoch) -> evaluation -> pictures -> metrics.json (written last).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import checkpoint, cli, data, plots, vae
from genjax.errors import UsageError
from genjax.fit import NonFiniteLoss, fit, write_json_atomic
from genjax.models.mlp_vae import VAE
from genjax.presets import PRESETS, VAEConfig, get_preset, make_optimizer
from genjax.train import (TrainState, data_mesh, fast_compiler_options, is_main_process, make_epoch,
                          make_train_step, num_batches, replicate, sync_processes)

DEFAULT_OUT = Path("runs/vae_mnist")
# Fields a resumed run may change: how long to train, and what to evaluate and draw afterwards.
RESUMABLE_CHANGES = ("epochs", "iwae_k", "num_samples", "interpolation")


def build_parser() -> cli.Parser:
    p = cli.Parser(prog="python -m experiments.vae_mnist", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="seed002", help=f"one of {', '.join(PRESETS)} (default seed002)")
    p.add_argument("--epochs", type=cli.non_negative_int("--epochs"), help="epochs in total (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--latent-dim", type=cli.positive_int("--latent-dim"))
    p.add_argument("--hidden", type=cli.widths("--hidden"), help="encoder hidden widths, e.g. 200,200 (decoder mirrors)")
    p.add_argument("--lr", type=cli.positive_float("--lr"))
    p.add_argument("--batch-size", type=cli.positive_int("--batch-size"))
    p.add_argument("--beta", type=cli.non_negative_float("--beta"), help="KL weight (beta-VAE); 1 is the VAE")
    p.add_argument("--kl-warmup-epochs", type=cli.non_negative_int("--kl-warmup-epochs"), help="linear KL annealing")
    p.add_argument("--pixels", choices=data.PIXEL_MODES, help="float, threshold (x > 0.5) or stochastic binarization")
    p.add_argument("--iwae-k", type=cli.positive_int("--iwae-k"), help="importance samples per test image (default 1000)")
    p.add_argument("--num-samples", type=cli.positive_int("--num-samples"), help="prior samples in samples.npy (default 10000)")
    p.add_argument("--interpolation", choices=("linear", "slerp"))
    p.add_argument("--data-dir", help="TFDS data dir (default $TFDS_DATA_DIR, else ../shared/tensorflow_datasets, else TFDS's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host run: call jax.distributed.initialize() (cluster settings from the environment)")
    return p


def config_from_args(args) -> VAEConfig:
    overrides = {k: getattr(args, k) for k in (
        "epochs", "latent_dim", "hidden", "lr", "batch_size", "beta", "kl_warmup_epochs",
        "pixels", "iwae_k", "num_samples", "interpolation")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(get_preset(args.preset), seed=args.seed, **overrides)


def reports_likelihood(config: VAEConfig) -> bool:
    """-ELBO and IWAE are likelihood bounds only for a Bernoulli decoder on binary pixels."""
    return config.likelihood == "bernoulli" and data.is_binary(config.pixels)


def resume_state(ckpt: checkpoint.Checkpointer, state, config: VAEConfig):
    """(state, history) from the last checkpoint, refusing one made with another config."""
    meta = ckpt.read_meta()
    saved = {k: v for k, v in meta["config"].items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(config))).items() if k not in RESUMABLE_CHANGES}
    if saved != now:
        diff = ", ".join(f"{k}: {saved.get(k)} -> {now.get(k)}" for k in now if saved.get(k) != now.get(k))
        raise UsageError(f"--resume with settings that differ from the checkpoint in {ckpt.directory} ({diff}); "
                         "rerun with the original flags, or drop --resume to start afresh")
    done = len(meta["history"])
    if config.epochs < done:
        raise UsageError(f"--resume --epochs {config.epochs}: the checkpoint in {ckpt.directory} has already "
                         f"trained {done} epochs; ask for {done} or more")
    state, meta = ckpt.restore(state)
    return state, meta["history"]


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
    rows = [vae.decode_means(model, params, vae.interpolate(z[2 * i], z[2 * i + 1], 10, config.interpolation))
            for i in range(5)]
    plots.save_grid(out / "interpolation.png", np.concatenate([np.asarray(r) for r in rows]).reshape(-1, *shape),
                    5, 10, f"{config.interpolation} interpolation between encoded test digits")
    if config.latent_dim == 2:
        z_all = np.asarray(vae.encode_means(model, params, x_test))
        plots.save_latent_scatter(out / "latent_scatter.png", z_all, test.labels, "test set: latent means by digit")
        grid = np.asarray(vae.decode_means(model, params, jnp.asarray(plots.manifold_grid(20)))).reshape(-1, *shape)
        plots.save_grid(out / "manifold.png", grid, 20, 20, "decoded latent grid, z in [-3, 3]^2")
    return means


def run(config: VAEConfig, out: Path, data_dir, resume: bool, progress: bool, t_start: float) -> dict:
    # Data: uint8 on every device; pixels are made inside the compiled step.
    train, test = data.load_dataset(config.dataset, data_dir)
    mesh = data_mesh()
    if config.batch_size % mesh.size:
        raise UsageError(f"--batch-size {config.batch_size} is not divisible by the {mesh.size} devices; "
                         f"choose a multiple of {mesh.size}")
    if config.batch_size > len(train):
        raise UsageError(f"--batch-size {config.batch_size} exceeds the {len(train)} training images")
    train_data = replicate({"image": jnp.asarray(train.images)}, mesh)
    x_test = replicate(data.fixed_eval_pixels(test.images, config.pixels), mesh)

    # Model, loss, optimizer, compiled epoch.
    model = VAE(config.hidden, config.latent_dim, int(np.prod(train.images.shape[1:])), config.activation)
    run_key = jax.random.key(config.seed, impl=config.prng)
    init_key, state_key, eval_key, draw_key = jax.random.split(run_key, 4)
    params = model.init(init_key, jnp.zeros((1, *train.images.shape[1:])), init_key)["params"]
    tx = make_optimizer(config.optimizer, config.lr)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    loss_fn = vae.make_vae_loss(model, config.likelihood, config.pixels, config.beta,
                                config.kl_warmup_epochs, steps_per_epoch)
    epoch_fn = make_epoch(make_train_step(loss_fn, tx), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    state = replicate(TrainState.create(params, tx, state_key), mesh)

    likelihood = reports_likelihood(config)

    def evaluate(state):
        m = vae.evaluate(model, state.params, x_test, eval_key, config.likelihood, mesh=mesh)
        result = {"loss": m["recon"] + config.beta * m["kl"], "recon": m["recon"], "kl": m["kl"]}
        return {**result, "neg_elbo": m["neg_elbo"]} if likelihood else result

    # The loop, checkpointed after each epoch.
    ckpt_dir = out / "checkpoints"
    if is_main_process() and not resume:
        checkpoint.clear(ckpt_dir)
    sync_processes("genjax: run directory ready")
    ckpt = checkpoint.Checkpointer(ckpt_dir)
    history = []
    if resume and ckpt.latest_epoch():
        state, history = resume_state(ckpt, state, config)
        print(f"resuming {ckpt_dir} after epoch {len(history)}", file=sys.stderr)
    elif resume:
        print(f"no checkpoint in {ckpt_dir}: starting from scratch", file=sys.stderr)
    if is_main_process():
        (out / "metrics.json").unlink(missing_ok=True)  # never leave a stale result beside a new run
    meta = {"config": dataclasses.asdict(config)}
    try:
        state, history = fit(state, epoch_fn, train_data, run_key, config.epochs, evaluate, ckpt, meta, out,
                             history, progress)
    except NonFiniteLoss as e:
        ckpt.close()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    ckpt.close()

    # Evaluation of the final parameters (the last epoch's test metrics, when it trained at all).
    params = jax.device_get(state.params)
    if history:
        final = {k.removeprefix("test_"): v for k, v in history[-1].items() if k.startswith("test_")}
    else:
        final = {k: float(v) for k, v in evaluate(state).items()}
    metrics = {"preset": config.preset, "seed": config.seed, "epochs": config.epochs,
               "devices": mesh.size, "backend": jax.default_backend(),
               "pixels": config.pixels, "binarization": data.BINARIZATION[config.pixels],
               "likelihood": config.likelihood}
    times = [row["seconds"] for row in history]
    metrics["seconds_per_epoch"] = float(np.median(times[1:] if len(times) > 1 else times)) if times else None
    metrics["first_epoch_seconds"] = times[0] if times else None
    metrics["test_loss"] = final["loss"]
    metrics["test_recon"], metrics["test_kl"] = final["recon"], final["kl"]
    if likelihood:
        k = config.iwae_k
        t0 = time.perf_counter()
        iw = jax.device_get(vae.iwae_nll(model, state.params, x_test, jax.random.fold_in(eval_key, 1), k,
                                          vae.iwae_chunk_size(k, x_test[0].size), mesh))
        metrics.update(test_neg_elbo=final["neg_elbo"], test_nll_iwae=float(iw["nll_iwae"]),
                       test_neg_elbo_k_samples=float(iw["neg_elbo"]), iwae_k=k,
                       iwae_seconds=round(time.perf_counter() - t0, 3))

    # Pictures, samples, and metrics.json last (written by one process).
    metrics.update(out=str(out), config=dataclasses.asdict(config), history=history)
    if not is_main_process():
        return metrics
    means = draw_pictures(out, model, params, config, test, x_test, draw_key)
    curve = "neg_elbo" if likelihood else "loss"
    train_curve = [r["train_recon"] + r["train_kl"] if likelihood else r["train_loss"] for r in history]
    plots.save_curves(out / "elbo.png", [r["epoch"] for r in history],
                      {"train": train_curve, "test": [r[f"test_{curve}"] for r in history]},
                      "-ELBO (nats/image)" if likelihood else "loss per image",
                      f"{config.preset}, binarization: {data.BINARIZATION[config.pixels].split(' (')[0]}")
    np.save(out / "samples.npy", means.astype(np.float32))
    metrics["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.distributed:
        jax.distributed.initialize()
    metrics = run(config, cli.check_writable(args.out), args.data_dir, args.resume, not args.no_progress, t_start)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("config", "history")}, indent=2))
    print(f"results in {metrics['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
