"""Shared layers: the loop-friendly convolution, the DCGAN's up- and down-sampling convolutions, the
dense product whose input gradient reads W^T written out, and the switch between these CPU forms and
XLA's native kernels (both paths forced on the CPU, values and gradients compared)."""

from __future__ import annotations

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models import layers
from genjax.models.conv_ae import ConvAutoencoder, FullyConvAutoencoder
from genjax.models.conv_vae import SEED_ARCHITECTURES, ConvVAE
from genjax.models.dcgan import DCDiscriminator, DCGenerator
from genjax.models.layers import (
    Conv2d,
    ConvTranspose2d,
    DownConv,
    UpConv,
    conv2d,
    conv_transpose2d,
    dense_dot_general,
    kernel_path,
    matmul,
    use_kernels,
)


def _lax_conv(x, kernel, padding):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k, padding, shape", [(3, ((1, 1), (1, 1)), (2, 6, 7, 3)), (2, ((0, 0), (0, 0)), (2, 5, 6, 4)),
                                               (4, ((1, 2), (0, 1)), (2, 8, 7, 2)), (3, ((1, 1), (1, 1)), (2, 6, 5, 1))])
def test_conv2d_and_its_hand_written_gradient_match_lax_and_autodiff(k, padding, shape):
    rng = np.random.default_rng(k)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, shape[-1], 5)), jnp.float32)  # 5 channels out: x's patches
    # where x has 1 channel, dy's patches otherwise
    y, vjp = jax.vjp(lambda a, b: conv2d(a, b, padding, "cpu"), x, kernel)  # the hand-written gradient
    y_ref, vjp_ref = jax.vjp(lambda a, b: _lax_conv(a, b, padding), x, kernel)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    for got, want in zip(vjp(dy), vjp_ref(dy)):
        assert float(jnp.max(jnp.abs(want))) > 0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _transposed_by_definition(x, w, padding, output_padding):
    """ConvTranspose2d(k, stride 2) as its definition, every input pixel adding its k x k patch of
    outputs, y[2i + k_y - padding, 2j + k_x - padding] += x[i, j] W[k_y, k_x] (a differentiable
    scatter-add, written independently of the layer's matmul-and-slices form)."""
    n, h, w_, _ = x.shape
    k, f = w.shape[0], w.shape[-1]
    full = jnp.zeros((n, 2 * (h - 1) + k + 1, 2 * (w_ - 1) + k + 1, f))  # one spare row/column for output_padding
    for ki in range(k):  # tap (k_y, k_x) of every input pixel (i, j) lands on row 2i + k_y, column 2j + k_x
        for kj in range(k):
            full = full.at[:, ki:ki + 2 * h:2, kj:kj + 2 * w_:2].add(jnp.einsum("nhwc,cf->nhwf", x, w[ki, kj]))
    ho, wo = (2 * (s - 1) - 2 * padding + k + e for s, e in zip((h, w_), output_padding))
    return full[:, padding:padding + ho, padding:padding + wo]


TRANSPOSED_CASES = [  # kernels 3-5, paddings 0-2, odd sizes, narrow and wide channels
    (UpConv(4), (0, 0), (2, 5, 6, 3)), (ConvTranspose2d(4, 4, 1, 1), (1, 1), (2, 3, 3, 3)),
    (ConvTranspose2d(4, 3, 1, (1, 0)), (1, 0), (2, 4, 5, 3)), (ConvTranspose2d(1, 5, 2, 1), (1, 1), (2, 4, 3, 2)),
    (UpConv(9), (0, 0), (2, 5, 6, 16)), (ConvTranspose2d(8, 3, 1, 1), (1, 1), (2, 4, 3, 5)),
    (ConvTranspose2d(10, 5, 2, (0, 1)), (0, 1), (2, 3, 4, 6)), (ConvTranspose2d(8, 4, 1, 0), (0, 0), (2, 3, 5, 72)),
    (ConvTranspose2d(9, 3, 0, 1), (1, 1), (2, 4, 3, 65))]


@pytest.mark.parametrize("layer, output_padding, shape", TRANSPOSED_CASES)
def test_conv_transpose2d_is_the_scatter_definition_with_its_gradients(layer, output_padding, shape):
    """The matmul-to-all-taps and overlap-add form against the definition, value and both gradients."""
    layer = layer.clone(kernels="cpu")
    x = jnp.asarray(np.random.default_rng(shape[1]).normal(size=shape), jnp.float32)
    variables = layer.init(jax.random.key(0), x)
    w, b = variables["params"]["kernel"], variables["params"]["bias"]
    ours = lambda w, x: jnp.sum(jnp.sin(layer.apply({"params": {"kernel": w, "bias": b}}, x)))  # noqa: E731
    ref = lambda w, x: jnp.sum(jnp.sin(_transposed_by_definition(x, w, layer.padding, output_padding) + b))  # noqa: E731
    np.testing.assert_allclose(layer.apply(variables, x), _transposed_by_definition(x, w, layer.padding, output_padding) + b,
                               rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.jit(jax.grad(ours, (0, 1)))(w, x), jax.jit(jax.grad(ref, (0, 1)))(w, x)):
        assert float(jnp.max(jnp.abs(want))) > 0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_downconv_is_the_strided_convolution_with_the_same_gradients():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8, 6, 2)), jnp.float32)
    down, strided = DownConv(5, kernels="cpu"), nn.Conv(5, (4, 4), (2, 2), padding=((1, 1), (1, 1)))  # space-to-depth
    variables = down.init(jax.random.key(0), x)  # the same parameter names and shapes as nn.Conv's
    loss = lambda layer: lambda v, x: jnp.sum(jnp.sin(layer.apply(v, x)))  # noqa: E731
    np.testing.assert_allclose(down.apply(variables, x), strided.apply(variables, x), rtol=1e-5, atol=1e-5)
    assert down.apply(variables, x).shape == (3, 4, 3, 5)
    for got, want in zip(jax.grad(loss(down), (0, 1))(variables, x), jax.grad(loss(strided), (0, 1))(variables, x)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, want)


def _torch_layer_like(variables, conv, *, transposed: bool):
    """A PyTorch layer holding ``variables``' kernel (HWIO -> (out, in, k, k), or (in, out, k, k) transposed)."""
    torch = pytest.importorskip("torch")
    w, b = np.array(variables["params"]["kernel"]), np.array(variables["params"]["bias"])  # writable copies
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w.transpose((2, 3, 0, 1) if transposed else (3, 2, 0, 1)).copy()))
        conv.bias.copy_(torch.from_numpy(b))
    return conv


def _torch_value_and_grads(layer, x):
    """y, d sum(sin y) / d (x, kernel) of a PyTorch layer, in NHWC / HWIO."""
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y = layer(xt)
    torch.sin(y).sum().backward()
    dw = layer.weight.grad.numpy()
    dw = dw.transpose((2, 3, 0, 1) if isinstance(layer, torch.nn.ConvTranspose2d) else (2, 3, 1, 0))
    return y.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1), dw


@pytest.mark.torch
@pytest.mark.parametrize("k, stride, padding, h, w", [(3, 2, 1, 14, 14), (3, 2, 1, 7, 9), (4, 2, 1, 7, 7),
                                                      (4, 2, 1, 8, 6), (3, 1, 1, 5, 6), (5, 2, 2, 9, 8)])
def test_conv2d_module_is_pytorchs_conv2d_with_its_gradients(k, stride, padding, h, w):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(k + h).normal(size=(2, h, w, 3)).astype(np.float32)
    layer = Conv2d(4, k, stride, padding)
    variables = layer.init(jax.random.key(0), x)
    ref = _torch_layer_like(variables, torch.nn.Conv2d(3, 4, k, stride, padding), transposed=False)
    y_ref, dx_ref, dw_ref = _torch_value_and_grads(ref, x)
    loss = lambda v, x: jnp.sum(jnp.sin(layer.apply(v, x)))  # noqa: E731
    dv, dx = jax.grad(loss, (0, 1))(variables, x)
    np.testing.assert_allclose(layer.apply(variables, x), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dv["params"]["kernel"], dw_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("k, padding, output_padding, h, w", [(4, 1, 1, 3, 3), (4, 1, 0, 3, 5), (3, 1, 1, 7, 7),
                                                              (3, 1, 0, 4, 5), (5, 2, 1, 4, 3), (3, 1, (1, 0), 4, 4)])
def test_conv_transpose2d_module_is_pytorchs_with_its_gradients(k, padding, output_padding, h, w):
    """Flax's nn.ConvTranspose pads differently; this layer follows PyTorch's padding and output_padding."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(k + h).normal(size=(2, h, w, 3)).astype(np.float32)
    layer = ConvTranspose2d(4, k, padding, output_padding)
    variables = layer.init(jax.random.key(0), x)
    ref = _torch_layer_like(variables, torch.nn.ConvTranspose2d(3, 4, k, 2, padding, output_padding), transposed=True)
    y_ref, dx_ref, dw_ref = _torch_value_and_grads(ref, x)
    loss = lambda v, x: jnp.sum(jnp.sin(layer.apply(v, x)))  # noqa: E731
    dv, dx = jax.grad(loss, (0, 1))(variables, x)
    assert layer.apply(variables, x).shape == y_ref.shape
    np.testing.assert_allclose(layer.apply(variables, x), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dv["params"]["kernel"], dw_ref, rtol=1e-4, atol=1e-5)


def test_conv_modules_at_4x4_stride_2_padding_1_are_downconv_and_upconv_with_the_papers_initialization():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 8, 64)), jnp.float32)
    for general, special in ((Conv2d(32, 4, 2, 1), DownConv(32)), (ConvTranspose2d(32, 4, 1), UpConv(32))):
        variables = general.init(jax.random.key(0), x)
        np.testing.assert_allclose(general.apply(variables, x), special.apply(variables, x), rtol=1e-5, atol=1e-5)
        params = special.init(jax.random.key(0), x)["params"]  # DCGAN: W ~ N(0, 0.02), b = 0
        assert abs(float(jnp.std(params["kernel"])) - 0.02) < 0.001 and not np.any(np.asarray(params["bias"]))


def test_conv_modules_start_from_pytorchs_default_initialization():
    """kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)), fan_in = k^2 c_in (Conv2d), k^2 c_out (ConvTranspose2d)."""
    x = jnp.zeros((1, 8, 8, 16))
    for layer, fan_in in ((Conv2d(32, 3, 2, 1), 9 * 16), (ConvTranspose2d(8, 4, 1), 16 * 8)):
        params = layer.init(jax.random.key(0), x)["params"]
        bound = 1 / np.sqrt(fan_in)
        for name in ("kernel", "bias"):
            values = np.abs(np.asarray(params[name]))
            assert values.max() <= bound and values.max() > (0.9 if name == "kernel" else 0.5) * bound, name


def test_dense_dot_general_is_nn_dense_with_the_same_gradients_for_inputs_of_any_rank():
    rng = np.random.default_rng(0)
    for shape in [(6, 5), (3, 4, 5)]:
        x = jnp.asarray(rng.normal(size=shape), jnp.float32)
        ours, ref = nn.Dense(7, dot_general=functools.partial(dense_dot_general, kernels="cpu")), nn.Dense(7)
        params = ref.init(jax.random.key(0), x)
        params = jax.tree.map(lambda p: p + jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)  # bias != 0
        y, vjp = jax.vjp(lambda p, a: ours.apply(p, a), params, x)
        y_ref, vjp_ref = jax.vjp(lambda p, a: ref.apply(p, a), params, x)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        dy = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
        for got, want in zip(jax.tree.leaves(vjp(dy)), jax.tree.leaves(vjp_ref(dy))):
            assert float(jnp.max(jnp.abs(want))) > 0
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="contraction"):
        dense_dot_general(jnp.ones((2, 3)), jnp.ones((2, 4)), (((0,), (0,)), ((), ())))


def _rhs_contractions(f, x, w) -> list[str]:
    """rhs_contracting_dims of every dot in the compiled gradient of sum(sin(f(x, w)))."""
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.sin(f(a, b))), argnums=(0, 1)))
    return re.findall(r" dot\(.*rhs_contracting_dims=\{(\d)\}", grad.lower(x, w).compile().as_text())


def test_matmuls_input_gradient_never_contracts_the_weights_second_axis_in_the_compiled_program():
    # XLA:CPU's kernel for dy W^T as a contraction over W's second axis is the slow one (4.5x at the
    # DCGAN's 6272 -> 1024 layer); matmul reads W^T written out instead, and XLA must not fold it back.
    x, w = jnp.ones((16, 64)), jnp.ones((64, 96))
    assert _rhs_contractions(jnp.matmul, x, w).count("1") == 1  # autodiff's: the slow form (the control)
    ours = _rhs_contractions(functools.partial(matmul, kernels="cpu"), x, w)
    assert len(ours) == 3 and "1" not in ours  # forward, input and weight gradients, all contracting W's rows


# ---------------------------------------------------------------- the kernel switch: "cpu" against "native"

# Every kind of convolution the models build (conv_vae's SEED_ARCHITECTURES, conv_ae's autoencoders, the
# DCGAN): kernel size, stride, padding, output_padding, odd or even input, and for Conv2d which operand's
# patches its hand-written kernel gradient takes; smaller channel counts than the models', some layers bias-free.
# test_the_switch_cases_cover_every_convolution_the_models_build checks the list against the models.
SWITCH_CASES = [
    (Conv2d(32, 4, 2, 1), (2, 8, 8, 1)),  # seed003's first layer: x's patches
    (Conv2d(8, 4, 2, 1), (2, 8, 8, 3)),  # CelebA's and CIFAR's first layers (and every even one after): dy's
    (DownConv(16, use_bias=False), (2, 14, 14, 8)),  # DCGAN D's second layer, 14 -> 7
    (Conv2d(16, 4, 2, 1), (2, 7, 7, 8)),  # seed003's 7 -> 3
    (Conv2d(32, 3, 2, 1), (2, 8, 8, 1)),  # seed004's first layer
    (Conv2d(8, 3, 2, 1), (2, 14, 14, 4)),  # seed004's 14 -> 7
    (Conv2d(1, 3, 1, 1), (2, 8, 8, 8)),  # seed004's stride-1 output convolution
    (Conv2d(4, 5, 2, 2), (2, 9, 8, 3)),  # beyond the presets: kernel 5, odd height
    (Conv2d(4, 3, 2, 1), (2, 7, 9, 3)),
    (ConvTranspose2d(8, 4, 1, 1), (2, 3, 3, 16)),  # seed003's 3 -> 7 (output_padding 1)
    (UpConv(4, use_bias=False), (2, 7, 7, 8)),  # DCGAN G's 7 -> 14
    (ConvTranspose2d(4, 4, 1, 0), (2, 4, 4, 8)),  # seed003 / CelebA / CIFAR decoders' doubling, even
    (ConvTranspose2d(1, 4, 1, 0), (2, 7, 7, 8)),  # seed003's last layer, 14 -> 28 (odd here), to one channel
    (ConvTranspose2d(4, 3, 1, 1), (2, 7, 7, 8)),  # seed004's 7 -> 14 (kernel 3, output_padding 1)
    (ConvTranspose2d(1, 3, 1, 1), (2, 6, 6, 4)),
    (ConvTranspose2d(4, 3, 1, (1, 0)), (2, 4, 5, 3)),  # beyond the presets
    (ConvTranspose2d(3, 5, 2, 1), (2, 4, 3, 2)),
]


def _kind(layer, shape) -> tuple:
    """What decides how a convolution computes on either path (the channel counts aside)."""
    _, h, w, c = shape
    if isinstance(layer, ConvTranspose2d):
        extra = layer.output_padding
        extra = (extra,) * 2 if isinstance(extra, int) else tuple(extra)
        return "transposed", layer.kernel_size, layer.padding, extra, h % 2, w % 2
    # conv2d's kernel gradient takes x's patches where 4 c < f, c counted after space-to-depth (4 c_in at stride 2)
    x_patches = 4 * c * layer.stride ** 2 < layer.features
    return "conv", layer.kernel_size, layer.stride, layer.padding, h % 2, w % 2, x_patches


def _model_convolutions() -> dict[str, list[tuple[nn.Module, tuple[int, ...]]]]:
    """Per model, (module, input shape) of every Conv2d / ConvTranspose2d call in its forward pass."""
    found = {}

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, (Conv2d, ConvTranspose2d)):
            found[name].append((context.module, tuple(args[0].shape)))
        return next_fun(*args, **kwargs)

    key = jax.random.key(0)
    calls = {seed: (ConvVAE(**arch), jnp.zeros((2, *arch["image_shape"])), key)
             for seed, arch in SEED_ARCHITECTURES.items()}
    calls.update(ConvAutoencoder=(ConvAutoencoder(), jnp.zeros((2, 28, 28, 1))),
                 FullyConvAutoencoder=(FullyConvAutoencoder(), jnp.zeros((2, 32, 32, 3))),
                 DCGenerator=(DCGenerator(hidden=16), jnp.zeros((2, 100))),
                 DCDiscriminator=(DCDiscriminator(hidden=16), jnp.zeros((2, 28, 28, 1))))
    with nn.intercept_methods(record):
        for name, (model, *args) in calls.items():
            found[name] = []
            jax.eval_shape(model.init, key, *args)
    return found


def test_the_switch_cases_cover_every_convolution_the_models_build():
    built = _model_convolutions()
    assert all(len(convs) >= 2 for convs in built.values()), {name: len(convs) for name, convs in built.items()}
    missing = {_kind(m, s) for convs in built.values() for m, s in convs} - {_kind(m, s) for m, s in SWITCH_CASES}
    assert not missing, f"layer kinds the models build without a case in SWITCH_CASES: {missing}"


def _value_and_gradients(layer, variables, x, dy):
    """y = layer(x) and the vjp of dy with respect to the parameters and x, in one jitted call."""
    def run(v, x, dy):
        y, vjp = jax.vjp(layer.apply, v, x)
        return y, *vjp(dy)
    return jax.jit(run)(variables, x, dy)


def _assert_close(got, want, what: str, rtol: float = 1e-5):
    """Equal to float32 rounding: every leaf within rtol of the largest |value| of its reference."""
    got, want = jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves_with_path(want)
    assert [path for path, _ in got] == [path for path, _ in want]
    for (path, a), (_, b) in zip(got, want):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0, f"{what}{jax.tree_util.keystr(path)} is all zeros: the comparison would prove nothing"
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, err_msg=f"{what}{jax.tree_util.keystr(path)}")


def _parameters(module, *args, method=None, seed: int = 0) -> dict:
    """``module``'s parameters, the tree (names, shapes, dtypes) checked to be the same whichever path
    traces ``init``, filled with N(0, 0.3^2) draws (no PRNG program to compile; any values do)."""
    trees = []
    for kernels in ("cpu", "native"):
        with use_kernels(kernels):
            trees.append(jax.eval_shape(functools.partial(module.init, method=method), jax.random.key(0), *args))
    assert jax.tree.structure(trees[0]) == jax.tree.structure(trees[1]) and trees[0] == trees[1]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), s.dtype), trees[0])


def _case_id(layer, shape) -> str:
    return f"{type(layer).__name__}-k{layer.kernel_size}-s{getattr(layer, 'stride', 2)}-{'x'.join(map(str, shape[1:]))}"


@pytest.mark.parametrize("layer, shape", SWITCH_CASES, ids=[_case_id(*case) for case in SWITCH_CASES])
def test_the_cpu_and_native_kernels_give_one_function_with_one_gradient(layer, shape):
    """The same variables through either path: the same y, the same dy-vjp to the kernel, bias and x."""
    rng = np.random.default_rng(sum(shape))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    variables = _parameters(layer, x, seed=sum(shape))  # one checkpoint for both paths
    dy = jnp.asarray(rng.normal(size=jax.eval_shape(layer.apply, variables, x).shape), jnp.float32)
    cpu = _value_and_gradients(layer.clone(kernels="cpu"), variables, x, dy)
    native = _value_and_gradients(layer.clone(kernels="native"), variables, x, dy)
    assert cpu[0].shape == native[0].shape == dy.shape
    _assert_close(cpu, native, "(y, d params, dx)")


def test_conv2d_and_conv_transpose2d_functions_take_either_path():
    """The free functions (conv2d is also DigitCNN's 3x3 convolution): each path, against each other."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 7, 6, 3)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
    for fn in (lambda x, k, kernels: conv2d(x, k, ((1, 1), (1, 1)), kernels),
               lambda x, k, kernels: conv_transpose2d(x, k[:, :, :, :3].transpose(0, 1, 3, 2), 1, (1, 0), kernels)):
        y, vjp = {}, {}
        for kernels in ("cpu", "native"):
            y[kernels], vjp[kernels] = jax.vjp(lambda a, b: fn(a, b, kernels), x, k)
        dy = jnp.asarray(rng.normal(size=y["cpu"].shape), jnp.float32)
        _assert_close((y["cpu"], *vjp["cpu"](dy)), (y["native"], *vjp["native"](dy)), "(y, dx, dk)")


@pytest.mark.parametrize("shape, features", [((4, 6272), 1024), ((3, 4, 5), 7)])  # DCGAN D's 7*7*128 -> 1024
def test_dense_dot_general_gives_one_function_with_one_gradient_on_either_path(shape, features):
    rng = np.random.default_rng(features)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    dense = {kernels: nn.Dense(features, dot_general=functools.partial(dense_dot_general, kernels=kernels))
             for kernels in ("cpu", "native")}
    variables = nn.Dense(features).init(jax.random.key(0), x)
    variables = jax.tree.map(lambda p: p + jnp.asarray(rng.normal(size=p.shape), jnp.float32), variables)  # bias != 0
    dy = jnp.asarray(rng.normal(size=(*shape[:-1], features)), jnp.float32)
    cpu, native = (_value_and_gradients(dense[k], variables, x, dy) for k in ("cpu", "native"))
    _assert_close(cpu, native, "(y, d params, dx)")
    for kernels in ("cpu", "native"):  # the same contract on both: a Dense layer's contraction only
        with pytest.raises(ValueError, match="contraction"):
            dense_dot_general(jnp.ones((2, 3)), jnp.ones((2, 4)), (((0,), (0,)), ((), ())), kernels=kernels)


def _equations(jaxpr) -> list:
    """Every equation of a closed jaxpr and its sub-jaxprs (scan bodies, jit calls), not descending into a
    custom VJP's primal (its ``bwd`` parameter names the hand-written gradient)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    found = []
    for eqn in jaxpr.eqns:
        found.append(eqn)
        if eqn.primitive.name == "custom_vjp_call":
            continue
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    found += _equations(sub)
    return found


def _traced(kernels: str):
    """Each layer kind and kernel function with ``kernels``, as (name, jaxpr of its forward pass)."""
    x, x1 = jnp.ones((2, 8, 8, 3)), jnp.ones((2, 4, 4, 3))
    k, w = jnp.ones((3, 3, 3, 4)), jnp.ones((3, 5))
    out = {}
    for name, layer, arg in [("Conv2d stride 1", Conv2d(4, 3, 1, 1, kernels=kernels), x),
                             ("Conv2d stride 2", Conv2d(4, 4, 2, 1, kernels=kernels), x),
                             ("ConvTranspose2d", ConvTranspose2d(4, 3, 1, 1, kernels=kernels), x1),
                             ("dense", nn.Dense(5, dot_general=functools.partial(dense_dot_general, kernels=kernels)),
                              jnp.ones((2, 3)))]:
        out[name] = jax.make_jaxpr(layer.apply)(jax.eval_shape(layer.init, jax.random.key(0), arg), arg)
    out["conv2d"] = jax.make_jaxpr(lambda x, k: conv2d(x, k, ((1, 1), (1, 1)), kernels))(x, k)
    out["conv_transpose2d"] = jax.make_jaxpr(lambda x, k: conv_transpose2d(x, k, 1, (1, 1), kernels))(x1, k)
    out["matmul"] = jax.make_jaxpr(lambda x, w: matmul(x, w, kernels))(jnp.ones((2, 3)), w)
    return out


HAND_WRITTEN = {  # a layer's bias adds through add_bias, whose gradient is channel_sum's
    "Conv2d stride 1": ["_conv2d_bwd", "_add_bias_bwd"], "Conv2d stride 2": ["_conv2d_bwd", "_add_bias_bwd"],
    "conv2d": ["_conv2d_bwd"], "ConvTranspose2d": ["_conv_transpose2d_bwd", "_add_bias_bwd"],
    "conv_transpose2d": ["_conv_transpose2d_bwd"], "dense": ["_matmul_bwd"], "matmul": ["_matmul_bwd"]}


def _assert_cpu_forms(traced: dict):
    for name, jaxpr in traced.items():
        eqns = _equations(jaxpr)
        vjps = [e for e in eqns if e.primitive.name == "custom_vjp_call"]
        assert [e.params["bwd"].__name__ for e in vjps] == HAND_WRITTEN[name], name
        assert not any(e.primitive.name == "conv_general_dilated" for e in eqns), name  # convolutions only inside it


def _assert_native_forms(traced: dict):
    for name, jaxpr in traced.items():
        eqns = _equations(jaxpr)
        assert not any(e.primitive.name.startswith("custom") for e in eqns), name
        convs = [e.params for e in eqns if e.primitive.name == "conv_general_dilated"]
        if name in ("dense", "matmul"):
            assert not convs and [e.primitive.name for e in eqns].count("dot_general") == 1, name
        else:  # one convolution at the layer's own stride; a transposed one as the lhs-dilated convolution
            [conv] = convs
            stride = 2 if name == "Conv2d stride 2" else 1
            dilation = 2 if "ranspose" in name else 1
            assert conv["window_strides"] == (stride, stride) and conv["lhs_dilation"] == (dilation, dilation), name


def test_auto_takes_the_hand_written_cpu_forms_on_the_cpu_and_native_takes_xlas_convolutions(monkeypatch):
    if jax.default_backend() != "cpu":  # on an accelerator's host: the decision as a CPU makes it
        monkeypatch.setattr(layers, "_platform", lambda: "cpu")
    assert kernel_path() == "cpu"
    auto, cpu, native = _traced("auto"), _traced("cpu"), _traced("native")
    _assert_cpu_forms(auto)
    _assert_native_forms(native)
    assert {n: str(j) for n, j in auto.items()} == {n: str(j) for n, j in cpu.items()}  # "auto" is "cpu", unchanged


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_auto_takes_the_native_kernels_on_an_accelerator(monkeypatch, platform):
    monkeypatch.setattr(layers, "_platform", lambda: platform)  # the decision, as it is made on a GPU or TPU host
    assert kernel_path() == "native" and kernel_path("cpu") == "cpu"
    auto = _traced("auto")
    _assert_native_forms(auto)
    assert {n: str(j) for n, j in auto.items()} == {n: str(j) for n, j in _traced("native").items()}


def test_the_platform_is_the_default_devices():
    with jax.default_device(jax.devices("cpu")[0]):
        assert layers._platform() == "cpu" and kernel_path() == "cpu"
    assert layers._platform() == jax.default_backend()
    assert kernel_path() == ("cpu" if jax.default_backend() == "cpu" else "native")
    with pytest.raises(ValueError, match="kernels must be one of"):
        kernel_path("gpu")
    with pytest.raises(ValueError, match="kernels must be one of"):
        Conv2d(4, kernels="fast").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="kernels must be one of"):
        with use_kernels("fast"):
            pass


def test_use_kernels_switches_a_whole_model_and_a_jitted_function_retraces_for_it():
    """A small seed004-like ConvVAE, encoded and decoded under each path: one parameter tree, the same
    logits and gradients; the jitted function traced outside the block traces again inside it."""
    model = ConvVAE(image_shape=(12, 12, 1), features=(4, 8), latent_dim=2, kernel_size=3, hidden=(6,),
                    decoder_features=(8, 8, 4), decoder_dense_relu=True, out_conv=3)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 12, 12, 1)), jnp.float32)
    params = _parameters(model, x, jax.random.key(0))
    paths = []

    @jax.jit
    def loss_and_grads(params, x):
        paths.append(kernel_path())

        def loss(p, x):  # the mean decoded (no sampling)
            return jnp.sum(jnp.sin(model.apply(p, model.apply(p, x, method="encode")[0], method="decode")))
        return jax.value_and_grad(loss, (0, 1))(params, x)

    def strided_or_dilated_convolutions() -> int:  # XLA's native stride-2 and transposed forms; the CPU ones have none
        eqns = _equations(jax.make_jaxpr(loss_and_grads)(params, x))
        return sum(e.primitive.name == "conv_general_dilated" and (2 in e.params["window_strides"] or
                                                                   2 in e.params["lhs_dilation"]) for e in eqns)

    cpu = loss_and_grads(params, x)
    with use_kernels("native"):
        native = loss_and_grads(params, x)
    loss_and_grads(params, x)  # outside again: the first trace, from jit's cache
    assert paths == ["cpu", "native"]
    _assert_close(cpu, native, "(loss, (d params, dx))", rtol=1e-4)
    assert strided_or_dilated_convolutions() == 0
    with use_kernels("native"):
        assert strided_or_dilated_convolutions() >= 4  # 2 convolutions, 2 transposed ones, and their gradients
        assert kernel_path("cpu") == "cpu"  # a layer's own setting wins over the block's
