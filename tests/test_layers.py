"""Shared layers: the loop-friendly convolution, the DCGAN's up- and down-sampling convolutions, and the
dense product whose input gradient reads W^T written out."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models.layers import Conv2d, ConvTranspose2d, DownConv, UpConv, conv2d, dense_dot_general, matmul


def _lax_conv(x, kernel, padding):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k, padding, shape", [(3, ((1, 1), (1, 1)), (2, 6, 7, 3)), (2, ((0, 0), (0, 0)), (2, 5, 6, 4)),
                                               (4, ((1, 2), (0, 1)), (2, 8, 7, 2)), (3, ((1, 1), (1, 1)), (2, 6, 5, 1))])
def test_conv2d_and_its_hand_written_gradient_match_lax_and_autodiff(k, padding, shape):
    rng = np.random.default_rng(k)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, shape[-1], 5)), jnp.float32)  # 5 channels out: x's patches
    # where x has 1 channel, dy's patches otherwise
    y, vjp = jax.vjp(lambda a, b: conv2d(a, b, padding), x, kernel)
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


@pytest.mark.parametrize("layer, output_padding, shape", [
    (UpConv(4), (0, 0), (2, 5, 6, 3)), (ConvTranspose2d(4, 4, 1, 1), (1, 1), (2, 3, 3, 3)),
    (ConvTranspose2d(4, 3, 1, (1, 0)), (1, 0), (2, 4, 5, 3)), (ConvTranspose2d(1, 5, 2, 1), (1, 1), (2, 4, 3, 2))])
def test_conv_transpose2d_is_the_scatter_definition_with_its_gradients(layer, output_padding, shape):
    """The matmul-to-all-taps and overlap-add form against the definition, value and both gradients."""
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
    down, strided = DownConv(5), nn.Conv(5, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
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
        ours, ref = nn.Dense(7, dot_general=dense_dot_general), nn.Dense(7)
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
    ours = _rhs_contractions(matmul, x, w)
    assert len(ours) == 3 and "1" not in ours  # forward, input and weight gradients, all contracting W's rows
