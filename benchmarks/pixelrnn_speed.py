"""PixelRNN speed: genjax's training step and sampler against seed 000's PyTorch code, in one run.

    pip install torch==2.13.0        # the baseline's PyTorch (CPU build)
    python -m benchmarks.pixelrnn_speed [--hidden 512] [--batch-size 128] [--repeats 3]

Prints, measured now on this machine, beside the CPU model and JAX's GEMM peak:

* one training step (forward, backward, AdamW) on a batch of real binarized
  digits: the notebook's PyTorch code; genjax's step as training runs it, inside
  the compiled epoch (``make_epoch`` over ``--epoch-steps`` batches, compiled ahead,
  seconds per step), and, for comparison, the same step as one standalone jitted
  call (which also pays, on every call, the first touch of the ~1.3 GB its backward
  pass keeps: about 0.5M page faults, about 1 s of system time here, that an epoch
  pays once for all of its steps); and genjax's **matmul-only floor** — the
  same step's matmuls alone at the same shapes (the 784 sequential recurrent
  products forward, the 784 backward, the recurrent weight gradient as one
  matmul over all steps, the head forward and backward),
  timed as one compiled program: the limit XLA's kernels set on this machine;
* the notebook's ``sample()`` loop against genjax's ``lax.scan`` sampler, for 16
  and 64 images.

Beside each row, genjax over its floor and the ceiling: PyTorch's time over the
row's matmuls at the GEMM peak, the most any program could beat PyTorch by here.
The target (the issue's), marked ok or MISS: the training step within 1.3x of its
matmul-only floor; the other rows have none.

GFLOP/s count the matmul work of the table form (the first layer's input
projection is a lookup): 3 x 784 x 2 x B x H x 4H per step. Times are the
fastest of ``--repeats`` after one untimed call.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import best_seconds, describe, gemm_peak_gflops, import_baseline, print_table
from genjax import data
from genjax.devices import data_mesh
from genjax.objectives import pixelrnn
from genjax.presets import PIXELRNN_PRESETS
from genjax.recipes.pixelrnn import PixelRNN as PixelRNNRecipe
from genjax.training.step import fast_compiler_options

T = 784
FLOOR_TARGET = 1.3  # the training step / its matmul-only floor


def matmul_floor(hidden: int, batch: int):
    """A jitted function of the step's matmuls alone, and its arguments."""
    h4 = 4 * hidden
    k = jax.random.split(jax.random.key(0), 4)
    w_hh = jax.random.normal(k[0], (hidden, h4)) / hidden
    head_w = jax.random.normal(k[1], (hidden, 1))
    das = jax.random.normal(k[2], (T, batch, h4))
    hs = jax.random.normal(k[3], (T, batch, hidden))

    def floor(w_hh, head_w, das, hs):
        # Forward: h_{t-1} W_hh, 784 times in sequence (the carry feeds the next product).
        a, _ = jax.lax.scan(lambda a, _: (a[:, :hidden] @ w_hh, None), jnp.ones((batch, h4)), None, length=T)
        logits = hs.reshape(T * batch, hidden) @ head_w
        # Backward: da_t W_hh^T in sequence, then dW_hh and the head's gradients as single matmuls.
        w_t = w_hh.T
        dh, _ = jax.lax.scan(lambda d, da: (da @ w_t, None), jnp.zeros((batch, hidden)), das)
        dw_hh = hs.reshape(T * batch, hidden).T @ das.reshape(T * batch, h4)
        dw_head = hs.reshape(T * batch, hidden).T @ logits
        dhs = logits @ head_w.T
        return a, dh, dw_hh, dw_head, dhs

    return jax.jit(floor, compiler_options=fast_compiler_options(data_mesh())), (w_hh, head_w, das, hs)


def genjax_step(hidden: int, x: jax.Array):
    """(model, params, jitted step, (state, batch)) of the seed's PixelRNN at ``hidden``, by its recipe."""
    recipe = PixelRNNRecipe(PIXELRNN_PRESETS["seed000"], x.shape[1:], hidden=hidden)
    state = recipe.init_state()
    step = jax.jit(recipe.train_step(0), compiler_options=fast_compiler_options(data_mesh()))
    batch = {"image": x, "mask": jnp.ones((x.shape[0],), jnp.float32)}
    return recipe.model, state.params, step, (state, batch)


def genjax_epoch_step(hidden: int, images: np.ndarray, batch_size: int, repeats: int) -> float:
    """Seconds per step of the compiled epoch over ``images`` (``len(images) // batch_size`` steps,
    the experiment's program, built by the recipe), the fastest of ``repeats`` calls; compiled ahead of time."""
    recipe = PixelRNNRecipe(PIXELRNN_PRESETS["seed000"], hidden=hidden, batch_size=batch_size)
    p = recipe.prepare(data.ImageSet(np.asarray(images), None), data_mesh())
    state, train, key = p.state, p.train_data, p.run_key
    compiled = p.epoch_fn.lower(state, train, key).compile()
    holder = [state]

    def one_epoch():
        holder[0], metrics = compiled(holder[0], train, key)
        return metrics

    return best_seconds(one_epoch, repeats=repeats) / (len(images) // batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch-steps", type=int, default=3, help="steps of the timed compiled epoch")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch_pixelrnn = import_baseline("torch_pixelrnn")

    h, b = args.hidden, args.batch_size
    train_images = data.load_split("mnist", "train", args.data_dir).images
    images = train_images[:b]
    binary = (images.astype(np.float32) / 255 > 0.5).astype(np.int64)
    peak = gemm_peak_gflops()
    print(f"{describe()}; float32 GEMM peak (2048^3): {peak:.0f} GFLOP/s")
    flops = 3 * T * 2 * b * h * 4 * h

    model, params, step, step_args = genjax_step(h, jnp.asarray(images))
    single = best_seconds(step, *step_args, repeats=args.repeats)
    ours = genjax_epoch_step(h, train_images[:b * args.epoch_steps], b, max(1, args.repeats - 1))
    floor_fn, floor_args = matmul_floor(h, b)
    floor = best_seconds(floor_fn, *floor_args, repeats=args.repeats)
    theirs = torch_pixelrnn.step_seconds(binary, h, b, steps=args.repeats)

    rows = [("training step", theirs["seconds"], ours, floor, flops, ("floor", FLOOR_TARGET)),
            ("  standalone call", theirs["seconds"], single, floor, flops, None)]
    for n in (16, 64):
        key = jax.random.key(2, impl="rbg")
        ours_n = best_seconds(lambda k: pixelrnn.sample(model, params, k, n, T), key, repeats=args.repeats)
        theirs_n = torch_pixelrnn.sample_seconds(n, h, repeats=max(1, args.repeats - 1))
        rows.append((f"sample {n} images", theirs_n, ours_n, None, T * 2 * n * h * 4 * h, None))

    print(f"PixelRNN hidden {h}, batch {b}; torch {theirs['torch_version']} with {theirs['threads']} threads; the "
          f"training step in a compiled epoch of {args.epoch_steps} steps")
    for name, _, t_ours, _, row_flops, _ in rows + [("matmul-only floor", None, floor, None, flops, None)]:
        gflops = row_flops / t_ours / 1e9
        print(f"  {name.strip()}: {gflops:.0f} GFLOP/s ({100 * gflops / peak:.0f}% of the peak)")
    print_table(rows, peak)


if __name__ == "__main__":
    main()
