"""genjax's convolution layers against ``jax.lax.conv_general_dilated``, values and gradients, torch-free.

Every stride-2 convolution the presets build (seeds 003 and 004, seed 001's CIFAR-10 models, the
CelebA VAE, the DCGAN, the autoencoders: 4x4 and 3x3 kernels, padding 1, sizes 64 down to 2 and
back up, 7 -> 3 and 3 -> 7 included), their stride-1 output convolution, and odd sizes (7, 13,
27) at kernel sizes 3, 4 and 5 with padding 0, 1 and 2, on every kernel path the layers offer.

The references are written from PyTorch's definitions, not from the layers' forms: ``Conv2d`` is
the strided, zero-padded cross-correlation ``lax.conv_general_dilated(x, W, (s, s), ((p, p), (p, p)))``
(output floor((H + 2p - k) / s) + 1, PyTorch's); ``ConvTranspose2d(k, 2, p, output_padding)`` is
the adjoint of that stride-2 ``Conv2d`` mapping the transposed layer's output size back to its input
size (PyTorch documents it as the gradient of ``Conv2d`` with respect to its input), taken with
``jax.vjp``. Gradients of the references are autodiff's; the layers' CPU path has hand-written ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models.layers import Conv2d, ConvTranspose2d, DownConv, UpConv

DN = ("NHWC", "HWIO", "NHWC")
# The layers' kernel paths where they have a switch (``kernels``): "cpu" is the space-to-depth /
# overlap-add form with hand-written gradients, "native" XLA's own convolutions. Without one there
# is a single path, the CPU form.
PATHS = ("cpu", "native") if "kernels" in Conv2d.__dataclass_fields__ else ("default",)


def reference_conv(x, kernel, stride: int, padding: int):
    """PyTorch's Conv2d(k, stride, padding), NHWC x HWIO."""
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
                                        dimension_numbers=DN)


def reference_conv_transpose(x, kernel, padding: int, output_padding: tuple[int, int]):
    """PyTorch's ConvTranspose2d(k, 2, padding, output_padding), x (N, H, W, C_in), kernel (k, k, C_in, C_out):
    the adjoint of the stride-2 Conv2d from (N, H_out, W_out, C_out) to (N, H, W, C_in) whose kernel
    is W with its channel axes swapped, H_out = 2 (H - 1) - 2 padding + k + output_padding."""
    n, h, w, _ = x.shape
    k, c_out = kernel.shape[0], kernel.shape[-1]
    out = tuple(2 * (s - 1) - 2 * padding + k + e for s, e in zip((h, w), output_padding))
    forward = lambda z: reference_conv(z, kernel.transpose(0, 1, 3, 2), 2, padding)  # noqa: E731
    y0 = jnp.zeros((n, *out, c_out), x.dtype)
    assert forward(y0).shape == x.shape, (forward(y0).shape, x.shape)  # that Conv2d maps H_out back to H
    return jax.vjp(forward, y0)[1](x)[0]


def layer_on(cls, path: str, **kwargs):
    return cls(**kwargs) if path == "default" else cls(**kwargs, kernels=path)


def assert_close(got, want, what: str):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = float(np.max(np.abs(want)))
    assert scale > 0, what  # a reference that is all zeros would check nothing
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * scale, err_msg=what)


def check_layer_against(layer, reference, x_shape, seed: int):
    """The layer's output and its gradients with respect to x, the kernel and the bias for a random
    cotangent, against ``reference(x, kernel) + bias`` and autodiff of it. Returns the output shape."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x)["params"]  # {"kernel", "bias"}
    assert set(shapes) == {"kernel", "bias"}
    k, _, c, _ = shapes["kernel"].shape
    params = {name: jnp.asarray(rng.normal(size=a.shape) / np.sqrt(k * k * c if name == "kernel" else 1), jnp.float32)
              for name, a in shapes.items()}
    y_ref = jax.eval_shape(reference, x, params["kernel"])
    dy = jnp.asarray(rng.normal(size=y_ref.shape), jnp.float32)

    @jax.jit
    def values_and_gradients(params, x, dy):
        y, vjp = jax.vjp(lambda p, a: layer.apply({"params": p}, a), params, x)
        y_ref, vjp_ref = jax.vjp(lambda p, a: reference(a, p["kernel"]) + p["bias"], params, x)
        return (y, *vjp(dy)), (y_ref, *vjp_ref(dy))

    (y, dp, dx), (y_ref, dp_ref, dx_ref) = values_and_gradients(params, x, dy)
    assert_close(y, y_ref, "output")
    assert_close(dx, dx_ref, "d input")
    assert_close(dp["kernel"], dp_ref["kernel"], "d kernel")
    assert_close(dp["bias"], dp_ref["bias"], "d bias")
    return y.shape


# (kernel, stride, padding, H, W, C_in, C_out, expected H_out, W_out). Channel counts are small
# but pick both of the stride-1 kernel gradient's branches (x's patches where 4 C_in < C_out for
# stride 1, 16 C_in < C_out for stride 2's space-to-depth blocks; dy's patches otherwise).
CONV_CASES = [
    # Presets. 4x4, padding 1 (seed 003, the DCGAN's D, seed 001's CIFAR-10 models, CelebA): 28 -> 14,
    # 7 -> 3, 4 -> 2, 64 -> 32 (32, 16 and 8 take 28's and 64's even-size path). 3x3, padding 1 (seed
    # 004, ConvAutoencoder): 28 -> 14 -> 7. Seed 004's stride-1 3x3 output convolution at 28.
    (4, 2, 1, 28, 28, 1, 20, 14, 14), (4, 2, 1, 7, 7, 3, 4, 3, 3), (4, 2, 1, 4, 4, 3, 4, 2, 2),
    (4, 2, 1, 64, 64, 3, 4, 32, 32),
    (3, 2, 1, 28, 28, 1, 20, 14, 14), (3, 2, 1, 14, 14, 3, 4, 7, 7),
    (3, 1, 1, 28, 28, 6, 1, 28, 28),
    # Odd sizes at k = 3, 4, 5 and paddings 0, 1, 2; non-square.
    (3, 2, 1, 13, 13, 2, 3, 7, 7), (3, 2, 1, 27, 27, 1, 20, 14, 14),
    (4, 2, 1, 13, 13, 2, 3, 6, 6), (4, 2, 1, 27, 27, 2, 3, 13, 13),
    (5, 2, 2, 13, 13, 2, 3, 7, 7), (5, 2, 2, 27, 27, 1, 20, 14, 14),
    (3, 2, 0, 13, 13, 2, 3, 6, 6), (4, 2, 0, 7, 7, 2, 3, 2, 2), (5, 2, 0, 27, 27, 2, 3, 12, 12),
    (5, 2, 1, 13, 7, 2, 3, 6, 3), (4, 2, 1, 27, 13, 2, 3, 13, 6),
    (3, 1, 1, 13, 7, 1, 5, 13, 7), (5, 1, 2, 13, 13, 2, 3, 13, 13),
]


# The native path's Conv2d is ``lax.conv_general_dilated`` at the layer's stride, the reference
# itself but for the layer's wiring of stride and padding: a few shapes check that wiring.
NATIVE_CONV_CASES = [(4, 2, 1, 7, 7, 3, 4, 3, 3), (3, 2, 1, 14, 14, 3, 4, 7, 7), (5, 2, 0, 27, 27, 2, 3, 12, 12),
                     (3, 1, 1, 13, 7, 1, 5, 13, 7)]
CONV_PARAMS = [(*case, PATHS[0]) for case in CONV_CASES] + [(*case, path) for path in PATHS[1:] for case in NATIVE_CONV_CASES]


@pytest.mark.parametrize("k, stride, padding, h, w, c, f, ho, wo, path", CONV_PARAMS)
def test_conv2d_matches_lax_conv_and_its_gradients(k, stride, padding, h, w, c, f, ho, wo, path):
    layer = layer_on(Conv2d, path, features=f, kernel_size=k, stride=stride, padding=padding)
    shape = check_layer_against(layer, lambda x, kernel: reference_conv(x, kernel, stride, padding), (2, h, w, c),
                                seed=k + 10 * h + w)
    assert shape == (2, ho, wo, f)  # PyTorch's floor((H + 2 padding - k) / stride) + 1


# (kernel, padding, output_padding, H, W, C_in, C_out, expected H_out, W_out)
TRANSPOSED_CASES = [
    # Presets' decoders. 4x4, padding 1: 3 -> 7 (seed 003's output_padding 1), 14 -> 28 (seed 003, the
    # DCGAN's G), 2 -> 4 (seed 001's CIFAR-10 models), 32 -> 64 (CelebA). 3x3, padding 1, output_padding 1
    # (seed 004, ConvAutoencoder): 7 -> 14 -> 28.
    (4, 1, (1, 1), 3, 3, 4, 3, 7, 7), (4, 1, (0, 0), 14, 14, 3, 1, 28, 28), (4, 1, (0, 0), 2, 2, 4, 3, 4, 4),
    (4, 1, (0, 0), 32, 32, 3, 3, 64, 64),
    (3, 1, (1, 1), 7, 7, 4, 3, 14, 14), (3, 1, (1, 1), 14, 14, 3, 1, 28, 28),
    # A decoder for 27x27 and 13x13 images at k = 3, 4, 5 (the encoder's 27 -> 13 -> 6, 27 -> 14 -> 7
    # undone); padding 0; non-square with a per-axis output_padding.
    (4, 1, (1, 1), 6, 6, 2, 3, 13, 13), (4, 1, (1, 1), 13, 13, 2, 3, 27, 27),
    (3, 1, (0, 0), 14, 14, 2, 3, 27, 27),
    (5, 2, (1, 1), 7, 7, 2, 3, 14, 14), (5, 2, (0, 0), 14, 14, 2, 3, 27, 27),
    (3, 0, (0, 0), 6, 6, 2, 3, 13, 13), (5, 0, (1, 1), 12, 12, 2, 3, 28, 28), (4, 2, (0, 0), 7, 7, 2, 3, 12, 12),
    (4, 1, (1, 0), 3, 7, 2, 3, 7, 14), (5, 2, (0, 1), 7, 13, 2, 3, 13, 26), (3, 1, (1, 0), 13, 7, 2, 3, 26, 13),
]


# The native path's transposed convolution is its own formula (an lhs-dilated convolution): k = 3, 4, 5,
# paddings 0, 1, 2, both output_paddings, non-square.
NATIVE_TRANSPOSED_CASES = [(4, 1, (1, 1), 3, 3, 4, 3, 7, 7), (3, 1, (1, 1), 14, 14, 3, 1, 28, 28),
                           (3, 0, (0, 0), 6, 6, 2, 3, 13, 13), (4, 2, (0, 0), 7, 7, 2, 3, 12, 12),
                           (5, 2, (0, 1), 7, 13, 2, 3, 13, 26), (4, 1, (1, 0), 3, 7, 2, 3, 7, 14)]
TRANSPOSED_PARAMS = ([(*case, PATHS[0]) for case in TRANSPOSED_CASES]
                     + [(*case, path) for path in PATHS[1:] for case in NATIVE_TRANSPOSED_CASES])


@pytest.mark.parametrize("k, padding, output_padding, h, w, c, f, ho, wo, path", TRANSPOSED_PARAMS)
def test_conv_transpose2d_matches_the_adjoint_of_lax_conv_and_its_gradients(k, padding, output_padding, h, w, c, f,
                                                                            ho, wo, path):
    layer = layer_on(ConvTranspose2d, path, features=f, kernel_size=k, padding=padding, output_padding=output_padding)
    shape = check_layer_against(layer, lambda x, kernel: reference_conv_transpose(x, kernel, padding, output_padding),
                                (2, h, w, c), seed=k + 10 * h + w)
    assert shape == (2, ho, wo, f)  # PyTorch's 2 (H - 1) - 2 padding + k + output_padding


@pytest.mark.parametrize("path", PATHS)
def test_the_dcgans_downconv_and_upconv_are_the_4x4_stride_2_padding_1_references(path):
    # D's first layer 28 -> 14; G's first 7 -> 14.
    assert check_layer_against(layer_on(DownConv, path, features=8), lambda x, kern: reference_conv(x, kern, 2, 1),
                               (2, 28, 28, 1), seed=1) == (2, 14, 14, 8)
    assert check_layer_against(layer_on(UpConv, path, features=4),
                               lambda x, kern: reference_conv_transpose(x, kern, 1, (0, 0)), (2, 7, 7, 8),
                               seed=3) == (2, 14, 14, 4)


def test_the_transposed_reference_is_pytorchs_scatter_definition():
    """The adjoint reference, checked once against ConvTranspose2d's definition written as loops:
    y[2i + k_y - padding, 2j + k_x - padding] += x[i, j] W[k_y, k_x] (zero where off the output)."""
    rng = np.random.default_rng(0)
    for k, p, e, h, w in [(4, 1, (1, 0), 3, 4), (3, 1, (1, 1), 4, 3), (5, 2, (0, 1), 3, 3), (3, 0, (0, 0), 2, 3)]:
        x, kern = rng.normal(size=(2, h, w, 2)), rng.normal(size=(k, k, 2, 3))
        ho, wo = 2 * (h - 1) - 2 * p + k + e[0], 2 * (w - 1) - 2 * p + k + e[1]
        y = np.zeros((2, ho, wo, 3))
        for i in range(h):
            for j in range(w):
                for ky in range(k):
                    for kx in range(k):
                        r, s = 2 * i + ky - p, 2 * j + kx - p
                        if 0 <= r < ho and 0 <= s < wo:
                            y[:, r, s] += x[:, i, j] @ kern[ky, kx]
        ref = reference_conv_transpose(jnp.asarray(x, jnp.float32), jnp.asarray(kern, jnp.float32), p, e)
        np.testing.assert_allclose(ref, y, rtol=1e-5, atol=1e-5)
