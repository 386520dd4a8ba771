"""Conv-VAE speed: genjax's compiled epochs against the seeds' PyTorch loops, and the conv-only floor, in one run.

    pip install torch==2.13.0        # the baselines' PyTorch (CPU build)
    python -m benchmarks.conv_vae_speed [--images 70000] [--epochs 2] [--steps 20] [--repeats 3]
                                        [--rows seed004 seed003_celeba seed003] [--breakdown] [--torch-threads N]
                                        [--iwae-images 10000] [--iwae-k 100] [--iwae-repeats 1]

Rows, each measured now on this machine, genjax and PyTorch (:mod:`benchmarks.torch_conv_vae`) side by side:

* ``seed004``: one epoch of seed 004's conv VAE (latent 2) over MNIST train + test, 70,000 images in
  547 steps of 128, as the seed trains. genjax: the epoch ``python -m experiments.conv_vae_mnist
  --preset seed004`` trains with (:meth:`genjax.VAE.prepare`: ``make_epoch`` over the
  real step, one ``lax.scan``), compiled ahead of time, ``--epochs`` timed calls (median). PyTorch:
  the seed's loop, ``--epochs`` timed epochs (median) after 3 warm-up batches. ``--images N`` times
  an epoch of the first N of the 70,000 images on both sides and scales each side's seconds by
  547 / ceil(N / 128) steps (the table says so).
* ``seed003_celeba``: one training step of seed 003's CelebA VAE (64x64x3, BatchNorm, batch 128) on
  random uint8 images. genjax: ``experiments.vae_celeba``'s epoch (``prepare``) over ``--steps``
  batches, one ``lax.scan`` of that many steps, compiled ahead; seconds per call / steps.
  PyTorch: ``--steps`` steps of seed 003's loop after 3 warm-up steps.
* ``seed003``: the same for seed 003's ConvVAE (28x28, latent 128, batch 128; MNIST).

and, without PyTorch (the seed has none), against its own floor only:

* ``seed003 ConvVAE IWAE``: the K-sample IWAE bound (``--iwae-k``, default the preset's 100) of seed 003's
  ConvVAE over the first ``--iwae-images`` MNIST test images (default all 10,000; threshold pixels; 0: no
  such row), as ``experiments.conv_vae_mnist`` evaluates it (the recipe's ``iwae_bound``: its 20 host
  calls, chunks and XLA's default options), ``--iwae-repeats`` timed calls (median) after a compiling one,
  scaled to 10,000 images (fewer images still make 20 calls, each with its own start-up cost, so only
  10,000 times what a run does). Its floor: the
  convolutions of each chunk the evaluation runs (:func:`iwae_conv_calls`: the encoder's on the chunk,
  the decoder's on the chunk's K latents per image), forward only, as genjax computes them, in one
  ``lax.scan``, compiled both with the epochs' options and with XLA's defaults (the faster counts).
  Target: within 1.3x of that floor.

The **conv-only floor** of each row: the convolutions of genjax's step alone, as genjax computes
them (every ``Conv2d`` and ``ConvTranspose2d`` of the model's forward pass at batch 128: a
``Conv2d`` as the stride-1 :func:`genjax.models.layers.conv2d` call it becomes after its
space-to-depth rewrite, read off the jaxpr, forward and backward through ``conv2d``'s own gradient,
kernel: the im2col matmul, input: the flipped convolution; a ``ConvTranspose2d`` as its
:func:`genjax.models.layers.conv_transpose2d`, the matmul to all taps and the overlap-add, and
its hand-written gradient (the overlap-add's adjoint and two matmuls); no input gradient for the
first layer, whose input is data), ``--steps`` (for seed004 the epoch's) steps in one jitted
``lax.scan``, with the epoch's compiler options. No dense layers, activations, BatchNorm, loss, optimizer, layout
shuffles or gathers. Each layer's forward output is its own cotangent; the kernels move by 1e-9 of
their gradient and each input by 1e-9 of its gradient (the first by a scalar), so nothing is loop
invariant. The floor's layers are independent of one another (XLA may overlap them).

PyTorch runs with ``os.cpu_count()`` threads (``--torch-threads``), in contiguous NCHW or
``torch.channels_last``, whichever a short probe (5 steps after 2 warm-up ones, per row) finds
faster: both probe figures are printed.

The **ceiling** of each row: the step's arithmetic (PyTorch's ``FlopCounterMode`` count of the seed's
step: every convolution and dense layer, forward, weight and input gradients, as direct convolution)
divided by the float32 GEMM peak measured at the start of the run. That is the time of a program
that does nothing but that arithmetic, at the fastest rate this CPU's matmul kernels reach; PyTorch's
time over it is the largest speed-up over PyTorch any program can have on this machine.

Targets (the issue's), marked ok or MISS per row: the seed004 epoch, the CelebA step and the seed003 step
each >= 1.0x as fast as PyTorch (the moonshot, 1.3x, beside it). Where a row's ceiling is below 1.3x,
the table says so and that row's target becomes genjax within 1.3x of its arithmetic at the GEMM peak.

``--breakdown``: where the time goes, per convolution: genjax's forward, kernel gradient and input
gradient (each alone, in a scan of ``--breakdown-steps``), beside PyTorch's (oneDNN) forward, weight
gradient and input gradient of the same layer at batch 128, in the chosen memory format.

Figures the issue quotes (other machines, faithful PyTorch copies; context only, nothing here is
compared with them): seed004 epoch 29.3 s, CelebA step 0.29 s, seed003 step 0.038 s on a 2-core
Intel Xeon; 26.5 s, 0.36 s and 0.033 s on a 2-core AMD EPYC.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.epoch_speed import FLOOR_TARGET  # the IWAE's, within 1.3x of its floor
from benchmarks.flops import subjaxprs
from benchmarks.machine import describe, gemm_peak_gflops, import_baseline, print_table, timed_calls
from genjax import data
from genjax.devices import data_mesh
from genjax.models.layers import Conv2d, ConvTranspose2d, conv2d, conv_transpose2d
from genjax.objectives import vae
from genjax.presets import CELEBA_VAE_PRESETS, CONV_VAE_MNIST_PRESETS
from genjax.recipes.base import Prepared
from genjax.recipes.vae import VAE, training_set
from genjax.training.step import epoch_key, fast_compiler_options, num_batches

BATCH = 128
EPOCH_IMAGES = 70_000  # seed 004's ConcatDataset([mnist_train, mnist_test])
TARGET = ("speed-up", 1.0, 1.3)  # every row over PyTorch, and the moonshot
ROWS = ("seed004", "seed003_celeba", "seed003")
CONFIGS = {"seed004": CONV_VAE_MNIST_PRESETS["seed004"], "seed003_celeba": CELEBA_VAE_PRESETS["seed003_celeba"],
           "seed003": CONV_VAE_MNIST_PRESETS["seed003"]}
LABELS = {"seed004": "seed004 conv VAE epoch", "seed003_celeba": "CelebA VAE step (BN, 64x64)",
          "seed003": "seed003 ConvVAE step (28x28)"}
EPS = 1e-9  # the floor's parameter and input moves: small, but nothing is loop invariant
PARTS = ("fwd", "dk", "dx")


# ---------------------------------------------------------------- the model's convolutions


@dataclasses.dataclass(frozen=True)
class ConvCall:
    """One convolution of the model's forward pass, as genjax computes it: a :func:`conv2d` call,
    x (N, H, W, C) * kernel (kh, kw, C, F) with ``padding`` ((top, bottom), (left, right)); or, with
    ``output_padding`` set, a :func:`conv_transpose2d` call (x, kernel (k, k, C, F), ``padding`` an int)."""

    name: str
    x_shape: tuple[int, ...]
    k_shape: tuple[int, ...]
    padding: tuple[tuple[int, int], tuple[int, int]] | int
    need_dx: bool  # False for the first layer: its input is data
    output_padding: tuple[int, int] | None = None  # set: a transposed convolution

    @property
    def transposed(self) -> bool:
        return self.output_padding is not None

    @property
    def y_shape(self) -> tuple[int, ...]:
        (n, h, w, _), (kh, kw, _, f) = self.x_shape, self.k_shape
        if self.transposed:
            return (n, *(2 * (s - 1) - 2 * self.padding + kh + e for s, e in zip((h, w), self.output_padding)), f)
        ((top, bottom), (left, right)) = self.padding
        return n, h + top + bottom - kh + 1, w + left + right - kw + 1, f

    def __call__(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        if self.transposed:
            return conv_transpose2d(x, kernel, self.padding, self.output_padding)
        return conv2d(x, kernel, self.padding)

    def flops(self, part: str) -> float:
        """2 x multiply-adds of the forward (``fwd``), the kernel gradient (``dk``) or the input gradient
        (``dx``): per output pixel k^2 C F for a convolution, per input pixel for a transposed one."""
        if part == "dx" and not self.need_dx:
            return 0.0
        kh, kw, c, f = self.k_shape
        if self.transposed:
            return 2.0 * math.prod(self.x_shape) * kh * kw * f
        return 2.0 * math.prod(self.y_shape) * kh * kw * c


def _forward_convs(jaxpr, found: list) -> list:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            p = eqn.params
            if (tuple(p["window_strides"]) != (1, 1) or tuple(p["lhs_dilation"]) != (1, 1)
                    or tuple(p["rhs_dilation"]) != (1, 1) or p["feature_group_count"] != 1):
                raise ValueError(f"not a conv2d call: {p}")
            found.append((tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape),
                          tuple(tuple(int(a) for a in pad) for pad in p["padding"])))
        for v in eqn.params.values():
            for sub in subjaxprs(v):
                _forward_convs(sub, found)
    return found


def _module_convs(fn, *args) -> list[ConvCall]:
    """Every convolution of ``fn(*args)``, in order: its ``Conv2d``/``ConvTranspose2d`` module calls
    (seen by ``nn.intercept_methods``, with their names), each ``Conv2d`` as the one :func:`conv2d`
    call its jaxpr shows after the space-to-depth rewrite; every layer but the first needs dx."""
    modules = []

    def record(next_fun, args, kwargs, context):
        m = context.module
        if context.method_name == "__call__" and isinstance(m, (Conv2d, ConvTranspose2d)):
            modules.append((m, "/".join(m.path), tuple(args[0].shape)))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    convs = iter(_forward_convs(jaxpr, []))
    calls = []
    for i, (m, name, x_shape) in enumerate(modules):
        if isinstance(m, ConvTranspose2d):
            extra = (m.output_padding,) * 2 if isinstance(m.output_padding, int) else tuple(m.output_padding)
            k_shape = (m.kernel_size, m.kernel_size, x_shape[-1], m.features)
            calls.append(ConvCall(name, x_shape, k_shape, m.padding, i > 0, extra))
        else:
            x, k, pad = next(convs)
            calls.append(ConvCall(name, x, k, pad, i > 0))
    if next(convs, None) is not None:
        raise ValueError("a conv2d call outside the model's Conv2d modules")
    return calls


def conv_calls(v: Prepared) -> list[ConvCall]:
    """Every convolution of the training forward pass of ``v``'s step at batch 128, in order
    (:func:`_module_convs` of its loss)."""
    c = v.recipe.config
    loss = vae.make_vae_loss(v.recipe.model, c.likelihood, c.pixels)
    batch = {"image": jnp.zeros((BATCH, *v.train_data["image"].shape[1:]), jnp.uint8), "mask": jnp.ones((BATCH,))}
    key = jax.random.key(0, impl=c.prng)
    return _module_convs(lambda p, s: loss(p, s, batch, key, 0), v.state.params, v.state.model_state)


def iwae_conv_calls(recipe: VAE, params, chunk: int, k: int) -> list[ConvCall]:
    """Every convolution of one chunk of the IWAE (:func:`genjax.objectives.vae.log_importance_weights`
    of ``chunk`` images, each with its own key): the encoder's at batch ``chunk``, the decoder's over
    the chunk's ``chunk`` x K latents."""
    x = jnp.zeros((chunk, *recipe.image_shape), jnp.float32)
    keys = jax.random.split(jax.random.key(0, impl=recipe.config.prng), chunk)
    return _module_convs(lambda p: vae.log_importance_weights(recipe.model, p, x, keys, k), params)


# ---------------------------------------------------------------- the conv-only floor


def conv_floor(calls: list[ConvCall], steps: int, parts: tuple[str, ...] = PARTS, epoch_options: bool = True):
    """A jitted ``lax.scan`` of ``steps`` steps of the ``calls``' convolutions, and its argument;
    compiled with the epochs' compiler options, or with ``epoch_options`` False XLA's defaults (as
    the evaluations are).

    ``parts`` all three: each layer forward, then backward through :func:`conv2d`'s gradient with its
    own output as cotangent (the floor). One part alone (the breakdown): ``fwd`` the forward only,
    ``dk`` the kernel gradient only, ``dx`` the input gradient only, each against a fixed cotangent."""
    keys = jax.random.split(jax.random.key(0), 3 * len(calls))
    xs, ks, dys = [], [], []
    for i, c in enumerate(calls):
        bound = 1.0 / math.sqrt(math.prod(c.k_shape[:3]))
        xs.append(jax.random.uniform(keys[3 * i], c.x_shape, jnp.float32))
        ks.append(jax.random.uniform(keys[3 * i + 1], c.k_shape, jnp.float32, -bound, bound))
        dys.append(jax.random.uniform(keys[3 * i + 2], c.y_shape, jnp.float32))
    both = set(parts) == set(PARTS)

    def body(carry, _):
        xs, ks = carry
        new_xs, new_ks = [], []
        for c, x, k, dy in zip(calls, xs, ks, dys):
            f = c
            if both:
                if c.need_dx:
                    y, vjp = jax.vjp(f, x, k)
                    dx, dk = vjp(y)
                    x = x + EPS * dx
                else:
                    y, vjp = jax.vjp(functools.partial(f, x), k)
                    (dk,) = vjp(y)
                    x = x * (1.0 + EPS * jnp.sum(dk))
                k = k - EPS * dk
            elif parts == ("fwd",):
                k = k * (1.0 + EPS * jnp.sum(f(x, k)))
            elif parts == ("dk",):
                (dk,) = jax.vjp(functools.partial(f, x), k)[1](dy)  # the forward is dead code: XLA drops it
                x = x * (1.0 + EPS * jnp.sum(dk))
            elif parts == ("dx",):
                (dx,) = jax.vjp(lambda x, f=f, k=k: f(x, k), x)[1](dy)
                k = k * (1.0 + EPS * jnp.sum(dx))
            else:
                raise ValueError(f"parts {parts}: all of {PARTS} or one")
            new_xs.append(x)
            new_ks.append(k)
        return (new_xs, new_ks), None

    def floor(carry):
        return jax.lax.scan(body, carry, None, length=steps)[0]

    options = fast_compiler_options(data_mesh()) if epoch_options else None
    return jax.jit(floor, compiler_options=options), (xs, ks)


def count_convolutions(compiled) -> int:
    """``convolution`` instructions in a compiled program's optimized HLO (a scan body counts once)."""
    return sum(" convolution(" in line for line in compiled.as_text().splitlines())


# ---------------------------------------------------------------- genjax's epoch


def genjax_epoch(row: str, train: data.ImageSet, test: data.ImageSet, calls_n: int) -> dict:
    """``calls_n`` timed calls of the row's real compiled epoch over ``train`` (compiled ahead of time)."""
    config = dataclasses.replace(CONFIGS[row], train_on_test=False)  # ``train`` is already the images it trains on
    mesh = data_mesh()
    v = VAE(config).prepare(train, mesh)
    calls = conv_calls(v)  # before the first call donates v.state
    state, key = v.state, v.run_key
    t = time.perf_counter()
    compiled = v.epoch_fn.lower(state, v.train_data, epoch_key(key, 0)).compile()
    compile_seconds = time.perf_counter() - t
    seconds, metrics = [], None
    for e in range(calls_n):
        t = time.perf_counter()
        state, metrics = compiled(state, v.train_data, epoch_key(key, e))
        jax.block_until_ready((state, metrics))
        seconds.append(time.perf_counter() - t)
    return {"seconds": statistics.median(seconds), "calls": seconds, "compile_seconds": compile_seconds,
                "steps": v.steps_per_epoch, "convolutions": count_convolutions(compiled), "conv_calls": calls,
                "loss": float(np.mean(jax.device_get(metrics["loss"])))}


def floor_seconds(calls: list[ConvCall], steps: int, repeats: int) -> dict:
    fn, carry = conv_floor(calls, steps)
    compiled = fn.lower(carry).compile()
    times = timed_calls(compiled, carry, repeats=repeats)
    return {"seconds": statistics.median(times), "calls": times, "convolutions": count_convolutions(compiled),
                "flops_per_step": sum(c.flops(p) for c in calls for p in PARTS)}


def iwae_row(images: np.ndarray, k: int, repeats: int = 1) -> dict:
    """The seed003 ConvVAE's IWAE over ``images`` (MNIST test, threshold pixels; the model at its
    initialization: the time does not depend on the weights), genjax against its conv-only floor.

    genjax: the recipe's :meth:`genjax.VAE.iwae_bound`, the call ``experiments.conv_vae_mnist`` makes
    (its 20 host calls, chunks, per-image keys, XLA's default options), ``repeats`` timed calls after a
    compiling one.
    The floor: the convolutions of one chunk (:func:`iwae_conv_calls`: the encoder's on the chunk, the
    decoder's on its K latents per image), forward only, as genjax computes them, once per chunk the
    evaluation runs, in one jitted ``lax.scan`` (:func:`conv_floor`; each layer's output summed into
    its kernel's nudge), compiled with the epochs' options and with XLA's defaults: the faster counts."""
    recipe = VAE(CONFIGS["seed003"], images.shape[1:])
    recipe.state = recipe.init_state()
    x = data.fixed_eval_pixels(images, recipe.config.pixels)
    times = timed_calls(functools.partial(recipe.iwae_bound, k=k, mesh=data_mesh()), x, repeats=repeats)
    chunk = vae.iwae_chunk_size(k, math.prod(images.shape[1:]))  # the evaluation's (one device)
    calls = iwae_conv_calls(recipe, recipe.state.params, chunk, k)
    chunks = -(-len(images) // chunk)
    floors = {}
    for epoch_options in (True, False):
        fn, carry = conv_floor(calls, chunks, ("fwd",), epoch_options)
        floors[epoch_options] = timed_calls(fn.lower(carry).compile(), carry, repeats=repeats)
    faster = min(floors, key=lambda o: statistics.median(floors[o]))
    floor = floors[faster]
    return {"k": k, "images": len(images), "chunk": chunk, "chunks": chunks, "calls": times, "floor_calls": floor,
            "floor_options": "the epochs'" if faster else "XLA's defaults", "floors": floors,
            "seconds": statistics.median(times), "floor_seconds": statistics.median(floor),
            "flops_per_chunk": sum(c.flops("fwd") for c in calls), "conv_calls": calls}


def breakdown(calls: list[ConvCall], steps: int, repeats: int) -> list[dict]:
    """Per call, seconds per step of each part alone (a scan of ``steps``)."""
    rows = []
    for c in calls:
        row = {"call": c}
        for part in PARTS:
            if part == "dx" and not c.need_dx:
                row[part] = 0.0
                continue
            fn, carry = conv_floor([c], steps, (part,))
            row[part] = statistics.median(timed_calls(fn, carry, repeats=repeats)) / steps
        rows.append(row)
    return rows


# ---------------------------------------------------------------- data


PROBE_STEPS, PROBE_WARMUP, TORCH_WARMUP = 5, 2, 3


def row_images(row: str, args) -> tuple[data.ImageSet, data.ImageSet, np.ndarray, np.ndarray]:
    """(the set genjax trains on, the test set ``prepare`` needs, the uint8 images PyTorch trains on,
    and those of its memory-format probe)."""
    need = BATCH * max(args.steps + TORCH_WARMUP, PROBE_STEPS + PROBE_WARMUP)
    if row == "seed003_celeba":
        images = np.random.default_rng(0).integers(0, 256, (need, 64, 64, 3), np.uint8)
        return data.ImageSet(images[:BATCH * args.steps], None), data.ImageSet(images[:BATCH], None), images, images
    train = data.load_split("mnist", "train", args.data_dir)
    test = data.load_split("mnist", "test", args.data_dir)
    if row == "seed004":
        everything = training_set(CONFIGS["seed004"], train, test).images  # train + test, 70,000
        images = everything[:args.images]
        return data.ImageSet(images, None), test, images, everything[:need]
    images = train.images[:need]
    return data.ImageSet(images[:BATCH * args.steps], None), test, images, images


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--images", type=int, default=EPOCH_IMAGES,
                        help="seed004: images in the timed epoch (the first N of MNIST train + test); both sides' "
                             "seconds are scaled to the 547-step epoch of 70,000")
    parser.add_argument("--epochs", type=int, default=2, help="seed004: timed epochs per side (median)")
    parser.add_argument("--steps", type=int, default=20, help="CelebA and seed003: steps per timed call")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls of genjax's step rows and of every floor (median)")
    parser.add_argument("--breakdown", action="store_true", help="per-layer conv times, genjax and PyTorch")
    parser.add_argument("--breakdown-steps", type=int, default=20, help="steps per timed breakdown scan")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                        help="PyTorch intra-op threads (default: os.cpu_count())")
    parser.add_argument("--iwae-images", type=int, default=10_000,
                        help="the seed003 ConvVAE's IWAE row: MNIST test images timed, seconds scaled to 10,000 "
                             "(default all 10,000, as a run evaluates; 0: no IWAE row)")
    parser.add_argument("--iwae-repeats", type=int, default=1,
                        help="timed calls of the IWAE row and of its floors, after a compiling one (median)")
    parser.add_argument("--iwae-k", type=int, default=CONFIGS["seed003"].iwae_k,
                        help=f"the IWAE row's importance samples (default {CONFIGS['seed003'].iwae_k}, the preset's)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch_conv_vae = import_baseline("torch_conv_vae")
    import torch  # installed: the baseline imported it
    if min(args.images, args.epochs, args.steps, args.repeats, args.breakdown_steps, args.torch_threads) < 1:
        sys.exit("error: --images, --epochs, --steps, --repeats, --breakdown-steps and --torch-threads must be "
                 "positive")
    if args.iwae_images < 0 or args.iwae_k < 1 or args.iwae_repeats < 1:
        sys.exit("error: --iwae-images must be 0 or more, --iwae-k and --iwae-repeats positive")
    args.images = min(args.images, EPOCH_IMAGES)

    peak = gemm_peak_gflops()
    print(f"{describe()}; torch {torch.__version__}, {args.torch_threads} threads; float32 GEMM peak (2048^3): "
          f"{peak:.0f} GFLOP/s", flush=True)  # CPU: cpu_model()
    full_steps = num_batches(EPOCH_IMAGES, BATCH)
    results = {}
    for row in args.rows:
        train, test, torch_images, probe_images = row_images(row, args)
        ours = genjax_epoch(row, train, test, args.epochs if row == "seed004" else args.repeats)
        steps = ours["steps"]
        floor = floor_seconds(ours["conv_calls"], steps, args.repeats)
        time.sleep(1.0)  # let each side's worker threads go idle before the other starts
        probe = {cl: torch_conv_vae.step_seconds(row, probe_images, PROBE_STEPS, PROBE_WARMUP, channels_last=cl,
                                                 threads=args.torch_threads)["seconds_per_step"]
                 for cl in (False, True)}
        channels_last = probe[True] < probe[False]
        if row == "seed004":
            theirs = torch_conv_vae.epoch_seconds(row, torch_images, args.epochs, channels_last, TORCH_WARMUP,
                                                  threads=args.torch_threads)
            scale = full_steps / steps  # to the 547-step epoch of 70,000 images
            t_torch, t_ours, t_floor = (scale * s for s in (theirs["seconds"], ours["seconds"], floor["seconds"]))
            torch_calls = theirs["epoch_seconds"]
        else:
            theirs = torch_conv_vae.step_seconds(row, torch_images, args.steps, TORCH_WARMUP, channels_last,
                                                 threads=args.torch_threads)
            scale = 1.0 / steps  # per step
            t_torch, t_ours, t_floor = theirs["seconds_per_step"], ours["seconds"] * scale, floor["seconds"] * scale
            torch_calls = [theirs["seconds_per_step"] * args.steps]
        time.sleep(1.0)
        # The step's arithmetic (PyTorch's FLOP count of the seed's step) at the GEMM peak: no program beats it.
        arithmetic = torch_conv_vae.step_arithmetic(row, train.images.shape[1:]) * (
            EPOCH_IMAGES / BATCH if row == "seed004" else 1.0)
        results[row] = {"ours": ours, "floor": floor, "probe": probe, "channels_last": channels_last, "torch": t_torch,
                        "genjax": t_ours, "floor_s": t_floor, "scale": scale, "steps": steps,
                        "torch_calls": torch_calls,
                        "arithmetic": arithmetic, "at_peak": arithmetic / (peak * 1e9)}
        if args.breakdown:
            results[row]["breakdown"] = breakdown(ours["conv_calls"], args.breakdown_steps, args.repeats)
            results[row]["torch_layers"] = torch_conv_vae.conv_layer_seconds(
                row, train.images.shape[1:], channels_last, repeats=max(5, args.repeats), threads=args.torch_threads)

    iwae = None
    if args.iwae_images:
        test = data.load_split("mnist", "test", args.data_dir).images
        iwae = iwae_row(test[:min(args.iwae_images, len(test))], args.iwae_k, args.iwae_repeats)

    # Per row: what was timed.
    def rounded(xs):
        return [round(x, 3) for x in xs]

    for row, r in results.items():
        o, f = r["ours"], r["floor"]
        what = (f"{args.images:,} images, {r['steps']} steps" + (f", scaled x{r['scale']:.2f} to {EPOCH_IMAGES:,} "
                f"images ({full_steps} steps)" if r["steps"] != full_steps else "")
                if row == "seed004" else f"{r['steps']} steps per call, seconds per step")
        print(f"{row}: {what}; genjax compiled in {o['compile_seconds']:.1f} s, calls {rounded(o['calls'])} s "
              f"(mean loss {o['loss']:.2f}); floor calls {rounded(f['calls'])} s, {f['flops_per_step'] / 1e9:.2f} "
              f"GFLOP/step; pytorch calls {rounded(r['torch_calls'])} s; pytorch probe s/step: contiguous "
              f"{r['probe'][False]:.4f}, channels_last {r['probe'][True]:.4f} -> "
              f"{'channels_last' if r['channels_last'] else 'contiguous (NCHW)'}; compiled convolutions per step: "
              f"genjax {o['convolutions']}, floor {f['convolutions']}")

    # The table: the ceiling is the step's arithmetic alone at the GEMM peak.
    print()
    if iwae:
        print(f"seed003 ConvVAE IWAE: k = {iwae['k']}, {iwae['images']:,} MNIST test images (threshold pixels) in "
              f"{iwae['chunks']} chunks of {iwae['chunk']}, seconds scaled x{10_000 / iwae['images']:.2f} to 10,000 "
              f"images; genjax calls {rounded(iwae['calls'])} s; conv-only floor calls, the epochs' options "
              f"{rounded(iwae['floors'][True])} s, XLA's defaults {rounded(iwae['floors'][False])} s -> "
              f"{iwae['floor_options']} ({iwae['flops_per_chunk'] * iwae['chunks'] / iwae['floor_seconds'] / 1e9:.0f} "
              f"GFLOP/s of its {iwae['flops_per_chunk'] / 1e9:.1f} GFLOP per chunk; those products at the GEMM peak: "
              f"{iwae['flops_per_chunk'] * iwae['chunks'] / (peak * 1e9) * 10_000 / iwae['images']:.1f} s per 10,000 "
              "images)")
    print()
    table = [(LABELS[row] + (" (scaled)" if row == "seed004" and r["steps"] != full_steps else ""), r["torch"],
              r["genjax"], r["floor_s"], r["arithmetic"], TARGET) for row, r in results.items()]
    if iwae:
        scale = 10_000 / iwae["images"]
        table.append((f"seed003 ConvVAE IWAE k={iwae['k']}", None, scale * iwae["seconds"],
                      scale * iwae["floor_seconds"], None, ("floor", FLOOR_TARGET)))
    print_table(table, peak, "step's arithmetic")
    print("seed004 s are per 70,000-image epoch, the others per step. The ceiling's arithmetic: convolutions and "
          "dense layers, forward and backward, as PyTorch's FlopCounterMode counts the seed's step, at this CPU's GEMM "
          "peak with everything else free; no program is faster")
    for row, r in results.items():
        per = r["steps"] / r["floor"]["seconds"] * r["floor"]["flops_per_step"] / 1e9
        print(f"  {row}: {r['arithmetic'] / 1e9:.1f} GFLOP, {r['at_peak']:.3f} s at the peak; genjax "
              f"{r['arithmetic'] / r['genjax'] / 1e9:.0f} GFLOP/s of it; the conv-only floor {per:.0f} GFLOP/s")

    # Where the time goes.
    print("\nwhere the time goes (genjax): conv-only floor / genjax step, and the rest (dense layers, activations, "
          "BatchNorm, loss, Adam, space-to-depth shuffles, the batch gather)")
    for row, r in results.items():
        print(f"  {row}: convolutions {100 * r['floor_s'] / r['genjax']:.0f}% ({r['floor_s']:.4f} s), "
              f"the rest {r['genjax'] - r['floor_s']:.4f} s")
    if args.breakdown:
        for row, r in results.items():
            per_step = r["floor"]["seconds"] / r["steps"]
            print(f"\n{row}: per convolution, ms per step at batch 128 (genjax: conv2d / conv_transpose2d as the "
                  "model calls them; "
                  f"pytorch: the seed's layer, {'channels_last' if r['channels_last'] else 'NCHW'}); floor "
                  f"{1e3 * per_step:.2f} ms/step")
            print(f"  {'layer':18} {'x * kernel':34} {'GFLOP':>6} {'fwd':>7} {'dK':>7} {'dX':>7} {'sum':>7}"
                  f"  | {'pytorch layer':16} {'fwd':>7} {'dW':>7} {'dX':>7} {'sum':>7}")
            totals = np.zeros(2)
            torch_layers = r["torch_layers"] if len(r["torch_layers"]) == len(r["breakdown"]) else []
            for i, b in enumerate(r["breakdown"]):
                c = b["call"]
                mine = [1e3 * b[p] for p in PARTS]
                shapes = f"{'x'.join(map(str, c.x_shape[1:]))} * {'x'.join(map(str, c.k_shape))}"
                line = (f"  {c.name:18} {shapes:34} {sum(c.flops(p) for p in PARTS) / 1e9:6.2f} "
                        + " ".join(f"{t:7.2f}" for t in mine) + f" {sum(mine):7.2f}")
                totals[0] += sum(mine)
                if torch_layers:
                    t = torch_layers[i]
                    theirs = [1e3 * t[p] for p in ("fwd", "dw", "dx")]
                    totals[1] += sum(theirs)
                    line += f"  | {t['name']:16} " + " ".join(f"{x:7.2f}" for x in theirs) + f" {sum(theirs):7.2f}"
                print(line)
            print(f"  {'total':18} {'':34} {'':6} {'':7} {'':7} {'':7} {totals[0]:7.2f}"
                  + (f"  | {'':16} {'':7} {'':7} {'':7} {totals[1]:7.2f}" if torch_layers else ""))
            if torch_layers:
                print(f"  convolutions alone: genjax (XLA) {totals[0]:.2f} ms/step, pytorch (oneDNN) "
                      f"{totals[1]:.2f} ms/step: XLA's are {totals[0] / totals[1]:.2f}x oneDNN's time")


if __name__ == "__main__":
    main()
