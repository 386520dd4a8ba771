"""A conditional VAE on MNIST (seed 003's exercise 3): ask for a digit, get that digit.

    python -m experiments.cvae_mnist                   # seed002's VAE + one-hot labels, latent 8, 50 epochs
    python -m experiments.cvae_mnist --digit 7         # also digit_7.png, 64 samples of a 7
    python -m experiments.cvae_mnist --latent-dim 20   # z then also carries the class: fewer samples are the digit asked for

The one-hot label y is concatenated to the encoder's input, q(z | x, y), and to the
decoder's, p(x | z, y); the prior is N(0, I). On threshold-binarized pixels the test
-ELBO and IWAE bound are of the conditional likelihood log p(x | y). The library's evaluator scores the
samples: the share of them its digit classifier assigns to the digit asked for
(class accuracy), FID and the rest. Needs its classifier
(`python -m experiments.mnist_classifier`, once).

Writes into --out: metrics.json (last), history.csv, samples.npy (N x 28 x 28 in
[0, 1], N / 10 of each digit) with sample_labels.npy (the digit asked for),
grid.png (rows: digit, columns: z), class_interpolation.png (one z, the label
moving from one digit to the next), elbo.png, checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import classifier, cli, data, evaluator, plots, prng, run, vae
from genjax.models import mlp_vae
from genjax.presets import CVAE_PRESETS, make_optimizer
from genjax.train import TrainState, fast_compiler_options, make_epoch, num_batches, replicate

CLASSES = 10
parser = run.parser(__doc__, "python -m experiments.cvae_mnist", Path("runs/cvae_mnist"), CVAE_PRESETS, "cvae")
run.preset_flag(parser, "--latent-dim", CVAE_PRESETS, type=cli.positive_int("--latent-dim"), help="latent dimensions")
run.preset_flag(parser, "--hidden", CVAE_PRESETS, type=cli.widths("--hidden"), help="encoder hidden widths, comma-separated")
run.preset_flag(parser, "--iwae-k", CVAE_PRESETS, type=cli.positive_int("--iwae-k"),
                help="importance samples per test image (binary pixels only)")
run.preset_flag(parser, "--num-samples", CVAE_PRESETS, type=cli.positive_int("--num-samples"),
                help="samples in samples.npy (rounded down to a multiple of 10), scored")
parser.add_argument("--digit", type=int, choices=range(CLASSES), help="also draw 64 samples of this digit")
classifier.add_dir_flag(parser)


def one_hot(labels) -> jax.Array:
    return jax.nn.one_hot(jnp.asarray(labels), CLASSES, dtype=jnp.float32)


def experiment(args) -> dict:
    config = run.config_from_args(args, CVAE_PRESETS)
    clf, _ = classifier.load(args.classifier_dir)  # before anything is written: it scores the samples
    r = run.Run(args, config, resumable=("epochs", "iwae_k", "num_samples"))
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    shape = train.images.shape[1:]
    train_data = replicate({"image": jnp.asarray(train.images), "label": jnp.asarray(train.labels)}, mesh)
    x_test = replicate(data.fixed_eval_pixels(test.images, config.pixels), mesh)
    y_test = replicate(one_hot(test.labels), mesh)

    model = mlp_vae.from_config(config, shape, num_classes=CLASSES)
    keys = vae.seed_keys(config.seed, config.prng)
    tx = make_optimizer(config.optimizer, config.lr)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    step = vae.make_vae_step(model, config.likelihood, config.pixels, config.optimizer, steps_per_epoch)
    epoch_fn = make_epoch(step(vae.hyperparameters(config)), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    state = replicate(TrainState.create(vae.init_params(model, keys["init"], shape), tx, keys["state"]), mesh)
    likelihood = vae.reports_likelihood(config.likelihood, config.pixels)

    def evaluate(state):
        m = vae.evaluate(model, state.params, x_test, keys["eval"], config.likelihood, mesh=mesh, cond=y_test)
        out = {"loss": m["recon"] + config.beta * m["kl"], "recon": m["recon"], "kl": m["kl"]}
        return {**out, "neg_elbo": m["neg_elbo"]} if likelihood else out

    state, history = r.fit(state, epoch_fn, train_data, keys["run"], evaluate, steps_per_epoch)
    params = jax.device_get(state.params)
    final = run.last_test_metrics(history, evaluate, state)
    metrics = {**r.summary(history, mesh), "binarization": data.BINARIZATION[config.pixels],
               "likelihood": config.likelihood, **{f"test_{k}": v for k, v in final.items()}}
    if likelihood:
        iw = vae.iwae_nll(model, params, x_test, jax.random.fold_in(keys["eval"], 1), config.iwae_k,
                          vae.iwae_chunk_size(config.iwae_k, x_test[0].size), mesh, cond=y_test)
        metrics.update(test_nll_iwae=float(iw["nll_iwae"]), iwae_k=config.iwae_k)

    # Samples of each digit in equal numbers, scored: does the classifier see the digit asked for?
    k_samples, k_grid, k_digit = jax.random.split(keys["draw"], 3)
    labels = np.repeat(np.arange(CLASSES), max(1, config.num_samples // CLASSES))
    samples = np.asarray(vae.prior_sample_means(model, params, k_samples, len(labels), one_hot(labels)))
    samples = samples.reshape(-1, *shape[:2])
    logits, feats = evaluator.features(clf, samples)
    probs = evaluator.probabilities(logits)
    hits = probs.argmax(axis=1) == labels
    scores = evaluator.score_features(probs, feats, evaluator.reference_set(clf, train.images, test.images))
    metrics.update({**scores, "class_accuracy": float(hits.mean()),
                    "class_accuracy_per_digit": [float(hits[labels == d].mean()) for d in range(CLASSES)]})

    if r.writes_files:
        np.save(r.out / "samples.npy", samples.astype(np.float32))
        np.save(r.out / "sample_labels.npy", labels.astype(np.int32))
        z = prng.normal(k_grid, (CLASSES, config.latent_dim))  # column j: the same z_j for every digit
        grid = vae.decode_means(model, params, jnp.tile(z, (CLASSES, 1)), one_hot(np.repeat(np.arange(CLASSES), CLASSES)))
        plots.save_grid(r.out / "grid.png", np.asarray(grid).reshape(-1, *shape[:2]), CLASSES, CLASSES,
                        "rows: the digit asked for; columns: one z each")
        t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
        cond = np.concatenate([(1 - t) * np.eye(CLASSES)[d] + t * np.eye(CLASSES)[(d + 1) % CLASSES]
                               for d in range(CLASSES)])
        steps = vae.decode_means(model, params, jnp.broadcast_to(z[:1], (len(cond), config.latent_dim)), jnp.asarray(cond))
        plots.save_grid(r.out / "class_interpolation.png", np.asarray(steps).reshape(-1, *shape[:2]), CLASSES, 10,
                        "one z; the label moves from digit d (left) to d + 1 (right)")
        if args.digit is not None:
            mine = vae.prior_sample_means(model, params, k_digit, 64, one_hot(np.full(64, args.digit)))
            plots.save_grid(r.out / f"digit_{args.digit}.png", np.asarray(mine).reshape(-1, *shape[:2]), 8, 8,
                            f"64 samples of the digit {args.digit}")
        curve = "neg_elbo" if likelihood else "loss"
        plots.save_curves(r.out / "elbo.png", [row["epoch"] for row in history],
                          {"test": [row[f"test_{curve}"] for row in history]},
                          "-ELBO (nats/image)" if likelihood else "loss per image", f"conditional VAE, {config.preset}")
    return r.finish(metrics, history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
