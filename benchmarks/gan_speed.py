"""GAN speed: genjax's compiled epochs against PyTorch, in one run on this machine.

    pip install torch==2.13.0        # the baselines' PyTorch (CPU build)
    python -m benchmarks.gan_speed [--epochs 3] [--dcgan-steps 30] [--dcgan-repeats 1] [--torch-threads N]

Prints, measured now on this machine, beside the CPU model and JAX's GEMM peak:

* ``seed000`` (seed 000's MLP GAN): seconds per epoch (60,000 images, 469 steps of
  128) of genjax's compiled epoch (``make_epoch`` over ``adversarial.make_gan_step``, as
  ``experiments.gan_mnist`` builds it) against the seed's PyTorch loop
  (:mod:`benchmarks.torch_gan`), both ways: D's gradients cleared (the intended
  algorithm, genjax's default) and as written (G's backward leaks into D's next
  gradient; genjax ``d_grad_leak=True``);
* the **matmul-only floor** of a ``seed000`` epoch, each way: the step's dense-layer
  matmuls alone at the same shapes, forward and backward (see :func:`seed000_floor`),
  as one jitted ``lax.scan`` over 469 steps: the limit XLA's GEMM kernels set here;
* ``dcgan``: seconds per training step over ``--dcgan-steps`` steps of genjax's
  compiled epoch (``make_epoch`` over a subset of that many batches, compiled ahead
  of time, so every timed call runs the experiment's program without compiling)
  against a PyTorch copy of the same architecture (contiguous NCHW or
  ``channels_last``, both timed over the same steps, the faster the baseline), and the extrapolated
  469-step epoch; and the DCGAN step's **products-only floor**: every matmul and convolution of
  genjax's step (read off its jaxpr, forward and backward, at their own shapes), alone, over the
  same number of steps (:func:`benchmarks.floors.products_floor`).

Beside each row, genjax over its floor and the **ceiling**: PyTorch's time over the row's products at
the GEMM peak, the most any program could beat PyTorch by here. The target (the issue's), marked ok or
MISS: the DCGAN step >= 1.2x as fast as PyTorch; where its ceiling is below 1.3x, the table says so and
the target becomes genjax within 1.3x of its products at the GEMM peak. The seed000 rows have none.

Matmul GFLOP count every dense product the step needs (2 m k n each): for
``seed000`` about 380 GFLOP per epoch with D's gradients cleared and 417 as
written (the seed's loop also takes D's weight gradients in G's backward pass).
The count of the floor's products is checked against the ``dot_general`` FLOPs
in the jaxpr of genjax's own step. Epoch times are medians after a first
(compiling) epoch; PyTorch's are medians after a first epoch too. PyTorch runs with
``os.cpu_count()`` threads unless ``--torch-threads`` says otherwise (on a machine
shared with other jobs, all-core PyTorch can be many times slower than one thread).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.floors import products_floor, step_products
from benchmarks.flops import step_flops
from benchmarks.machine import describe, gemm_peak_gflops, import_baseline, print_table, timed_median
from genjax import data
from genjax.devices import data_mesh, replicate
from genjax.presets import GAN_PRESETS
from genjax.recipes.gan import GAN
from genjax.training.step import epoch_key, fast_compiler_options, make_epoch, num_batches

BATCH = 128
DCGAN_SPEEDUP = 1.2  # the DCGAN step over its PyTorch copy


# ---------------------------------------------------------------- seed000: genjax


def build_gan(preset: str, d_grad_leak: bool, image_shape=(28, 28, 1)):
    """(config, run key, initial state, step) of the preset's GAN, built by its recipe."""
    recipe = GAN(GAN_PRESETS[preset], image_shape, d_grad_leak=d_grad_leak)
    return recipe.config, recipe.keys()["run"], recipe.init_state(), recipe.train_step(0)


def genjax_epochs(preset: str, images: np.ndarray, epochs: int, d_grad_leak: bool = False,
                  compile_first: bool = False) -> dict:
    """``epochs`` timed calls of the compiled epoch over ``images``. Without ``compile_first``
    the first call compiles (and is left out of the median); with it the epoch is compiled ahead
    of time (``compile_seconds``) and every call counts."""
    config, key, state, step = build_gan(preset, d_grad_leak, images.shape[1:])
    mesh = data_mesh()
    example = {"image": jnp.asarray(images[:config.batch_size]), "mask": jnp.ones((config.batch_size,))}
    flops = step_flops(step, state, example, convs=config.model != "mlp")
    epoch = make_epoch(step, config.batch_size, mesh, compiler_options=fast_compiler_options(mesh))
    state = replicate(state, mesh)
    train = replicate({"image": jnp.asarray(images)}, mesh)
    compile_seconds = None
    if compile_first:
        t = time.perf_counter()
        epoch = epoch.lower(state, train, epoch_key(key, 0)).compile()
        compile_seconds = time.perf_counter() - t
    seconds, metrics = [], None
    for e in range(epochs):
        t = time.perf_counter()
        state, metrics = epoch(state, train, epoch_key(key, e))
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - t)
    m = {k: float(np.mean(jax.device_get(v))) for k, v in metrics.items()}
    timed = seconds if compile_first or epochs == 1 else seconds[1:]
    return {"epoch_seconds": seconds, "seconds": statistics.median(timed), "compile_seconds": compile_seconds,
            "steps": num_batches(len(images), config.batch_size), "step_flops": flops, "metrics": m}


# ---------------------------------------------------------------- seed000: the matmul-only floor


def seed000_floor(steps: int, d_grad_leak: bool, latent: int = 20, hidden: int = 400, pixels: int = 784):
    """The dense-layer matmuls of ``steps`` seed000 GAN steps alone, as one jitted ``lax.scan``,
    with its arguments and its FLOP count. Per step, at batch B (no biases, activations, losses
    or optimizer: matmul outputs feed the next product directly):

    D's step: G's forward for D's fakes (z Wg1, h Wg2); D's forward on the real and on the fake
    batch (x Wd1, h Wd2, each); D's backward on each: the weight gradients h^T g and x^T dh and
    the input gradient g Wd2^T (the first layer needs none: real data, and fakes held fixed).
    G's step: G's forward on new noise, D's forward on its images; backward through D's inputs
    (g Wd2^T, dh Wd1^T), G's weight gradients and the input gradient of G's second layer; as
    written (``d_grad_leak``) also D's weight gradients (the seed's loop takes them, and they add
    into D's next update). The weights move by a tiny step each step, so no product is loop
    invariant and XLA cannot hoist it out of the scan."""
    flops = []

    def mm(a, b):
        flops.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return a @ b

    def step(carry, x):
        wg1, wg2, wd1, wd2, leak1, leak2, z_d, z_g = carry
        # D's step.
        fake = mm(mm(z_d, wg1), wg2)
        grads1, grads2 = leak1, leak2
        for batch in (x, fake):
            h = mm(batch, wd1)
            g = mm(h, wd2)  # the logits stand in for dL/dlogits
            grads2 = grads2 + mm(h.T, g)
            grads1 = grads1 + mm(batch.T, mm(g, wd2.T))
        wd1, wd2 = wd1 - 1e-6 * grads1, wd2 - 1e-6 * grads2
        # G's step, against the updated D.
        hg = mm(z_g, wg1)
        images = mm(hg, wg2)
        hd = mm(images, wd1)
        g = mm(hd, wd2)
        dhd = mm(g, wd2.T)
        dimages = mm(dhd, wd1.T)
        if d_grad_leak:
            leak1, leak2 = mm(images.T, dhd), mm(hd.T, g)
        dwg2 = mm(hg.T, dimages)
        dwg1 = mm(z_g.T, mm(dimages, wg2.T))
        return (wg1 - 1e-6 * dwg1, wg2 - 1e-6 * dwg2, wd1, wd2, leak1, leak2, z_d, z_g), None

    k = jax.random.split(jax.random.key(0), 8)
    u = lambda key, shape, fan_in: jax.random.uniform(key, shape, jnp.float32, -1, 1) / math.sqrt(fan_in)  # noqa: E731
    carry = (u(k[0], (latent, hidden), latent), u(k[1], (hidden, pixels), hidden),
             u(k[2], (pixels, hidden), pixels), u(k[3], (hidden, 1), hidden),
             jnp.zeros((pixels, hidden)), jnp.zeros((hidden, 1)),
             jax.random.normal(k[4], (BATCH, latent)), jax.random.normal(k[5], (BATCH, latent)))
    xs = jax.random.uniform(k[6], (steps, BATCH, pixels))  # a real batch per step, as the epoch gathers

    def floor(carry, xs):
        return jax.lax.scan(step, carry, xs)[0]

    jax.eval_shape(step, carry, xs[0])  # counts the products once
    fn = jax.jit(floor, compiler_options=fast_compiler_options(data_mesh()))
    return fn, (carry, xs), sum(flops) * steps


def dcgan_floor(steps: int, image_shape=(28, 28, 1)):
    """The products-only floor of ``steps`` DCGAN steps (:func:`benchmarks.floors.products_floor`
    over the products of genjax's own step at batch 128): ``(fn, args, flops)``."""
    _, _, state, step = build_gan("dcgan", False, image_shape)
    example = {"image": jnp.zeros((BATCH, *image_shape), jnp.uint8), "mask": jnp.ones((BATCH,))}
    return products_floor(step_products(step, state, example), steps)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3,
                        help="seed000 epochs per measurement, genjax and PyTorch (the first is not counted)")
    parser.add_argument("--dcgan-steps", type=int, default=30, help="DCGAN training steps timed per measurement")
    parser.add_argument("--dcgan-repeats", type=int, default=1,
                        help="timed calls of genjax's DCGAN epoch (compiled ahead of time; the median counts)")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                        help="PyTorch intra-op threads (default: os.cpu_count())")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch_gan = import_baseline("torch_gan")
    import torch  # installed: the baseline imported it
    if min(args.epochs, args.dcgan_steps, args.dcgan_repeats, args.torch_threads) < 1:
        sys.exit("error: --epochs, --dcgan-steps, --dcgan-repeats and --torch-threads must be positive")
    repeats = max(1, args.epochs - 1)

    images = data.load_split("mnist", "train", args.data_dir).images
    peak = gemm_peak_gflops()
    print(f"{describe()}; float32 GEMM peak (2048^3): {peak:.0f} GFLOP/s", flush=True)

    # seed000: genjax both ways, the floors, then the seed's loop both ways.
    ours, floors, theirs = {}, {}, {}
    for leak in (False, True):
        ours[leak] = genjax_epochs("seed000", images, args.epochs, d_grad_leak=leak)
        fn, floor_args, floor_flops = seed000_floor(ours[leak]["steps"], leak)
        seconds, times = timed_median(fn, *floor_args, repeats=repeats)
        floors[leak] = {"seconds": seconds, "times": times, "flops": floor_flops}
        time.sleep(1.0)  # let each side's worker threads go idle before the other starts
    for leak in (False, True):
        theirs[leak] = torch_gan.seed000_seconds_per_epoch(images, args.epochs, clear_d_grads=not leak,
                                                           threads=args.torch_threads)
        time.sleep(1.0)

    # dcgan: PyTorch in both memory formats over the same timed steps, its faster as the baseline; then genjax.
    subset = images[:BATCH * args.dcgan_steps]
    dc = GAN_PRESETS["dcgan"]
    shape = {"width": dc.hidden, "d_norm": dc.d_norm, "hidden": dc.fc_hidden, "threads": args.torch_threads}
    both = {cl: torch_gan.dcgan_step_seconds(images, args.dcgan_steps, warmup=3, channels_last=cl, **shape)
            for cl in (False, True)}
    per_step = {cl: r["seconds_per_step"] for cl, r in both.items()}
    channels_last = per_step[True] < per_step[False]
    torch_dc = both[channels_last]
    time.sleep(1.0)
    ours_dc = genjax_epochs("dcgan", subset, args.dcgan_repeats, compile_first=True)
    fn, floor_args, dc_floor_flops = dcgan_floor(args.dcgan_steps)
    dc_floor_seconds, dc_floor_times = timed_median(fn, *floor_args, repeats=args.dcgan_repeats)

    # The report.
    def rounded(seconds):
        return [round(x, 2) for x in seconds]

    steps = ours[False]["steps"]
    lines = [f"seed000: {steps} steps of batch {BATCH} per epoch; matmul work per epoch "
             f"{floors[False]['flops'] / 1e9:.1f} GFLOP with D's gradients cleared, "
             f"{floors[True]['flops'] / 1e9:.1f} as written (dot_generals in genjax's step: "
             f"{ours[False]['step_flops'] * steps / 1e9:.1f} and {ours[True]['step_flops'] * steps / 1e9:.1f})",
             f"torch {torch.__version__}, {theirs[False]['threads']} threads; dcgan s/step: contiguous "
             f"{per_step[False]:.3f}, channels_last {per_step[True]:.3f} -> "
             f"{'channels_last' if channels_last else 'contiguous (NCHW)'}"]
    for leak in (False, True):
        g_m = ours[leak]["metrics"]
        lines.append(f"  {'as written' if leak else 'D cleared'}: genjax epochs {rounded(ours[leak]['epoch_seconds'])}, "
                     f"floor {rounded(floors[leak]['times'])}, pytorch epochs {rounded(theirs[leak]['epoch_seconds'])}; "
                     f"genjax last epoch d_loss {g_m['d_loss']:.3f} g_loss {g_m['g_loss']:.3f}, pytorch last batch "
                     f"d_loss {theirs[leak]['last_d_loss']:.3f} g_loss {theirs[leak]['last_g_loss']:.3f}")
    dc_steps = num_batches(len(images), BATCH)
    dc_ours = ours_dc["seconds"] / args.dcgan_steps
    dc_flops = ours_dc["step_flops"]
    lines.append(f"dcgan: {args.dcgan_steps} steps per measurement (PyTorch's after 3 warm-up steps); genjax's epoch "
                 f"compiled ahead in {ours_dc['compile_seconds']:.1f} s, calls {rounded(ours_dc['epoch_seconds'])} s; "
                 f"{dc_flops / 1e9:.1f} GFLOP per step (matmuls and convolutions of genjax's step; the floor's "
                 f"products {dc_floor_flops / args.dcgan_steps / 1e9:.1f}), floor calls {rounded(dc_floor_times)} s")
    print("\n".join(lines))

    def gf(flops, seconds):
        return f"{flops / seconds / 1e9:.0f} GFLOP/s ({100 * flops / seconds / 1e9 / peak:.0f}% of the peak)"

    t_torch, dc_floor = torch_dc["seconds_per_step"], dc_floor_seconds / args.dcgan_steps
    for leak, name in ((False, "D cleared"), (True, "as written")):
        print(f"  seed000 {name}: genjax {gf(floors[leak]['flops'], ours[leak]['seconds'])}, "
              f"floor {gf(floors[leak]['flops'], floors[leak]['seconds'])}")
    print(f"  dcgan: genjax {gf(dc_flops, dc_ours)}, floor {gf(dc_flops, dc_floor)}; the rest of the step (BatchNorm, "
          f"activations, losses, Adam, the batch gather) {dc_ours - dc_floor:.3f} s; a {dc_steps}-step epoch "
          f"(extrapolated): pytorch {t_torch * dc_steps:.1f} s, genjax {dc_ours * dc_steps:.1f} s")
    print_table([("seed000 epoch, D grads cleared", theirs[False]["seconds_per_epoch"], ours[False]["seconds"],
                  floors[False]["seconds"], floors[False]["flops"], None),
                 ("seed000 epoch, as written", theirs[True]["seconds_per_epoch"], ours[True]["seconds"],
                  floors[True]["seconds"], floors[True]["flops"], None),
                 ("dcgan step", t_torch, dc_ours, dc_floor, dc_flops, ("speed-up", DCGAN_SPEEDUP))], peak, "products")


if __name__ == "__main__":
    main()
