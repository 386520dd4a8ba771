"""The autoencoders and convolutional VAEs: the seeds' shapes and parameter counts, a PyTorch copy of
seed 003's (fixed) ConvVAE, BatchNorm's statistics, and gradients through every model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models.conv_ae import ConvAutoencoder, FullyConvAutoencoder
from genjax.models.conv_vae import SEED_ARCHITECTURES, ConvVAE
from genjax.models.mlp_ae import MLPAutoencoder
from genjax.models.mlp_vae import VAE as MLPVAE

KEY = jax.random.key(0, impl="rbg")  # as the presets; its initialization compiles fastest on the CPU
SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 3)]
AUTOENCODERS = {"seed003_mlp_ae": MLPAutoencoder, "seed004_conv_ae": ConvAutoencoder,
                "seed001_conv_ae": FullyConvAutoencoder}
VAES = {"seed001_mlp_vae": lambda **kw: MLPVAE(**{"hidden": (128,), "latent_dim": 16, "image_shape": (32, 32, 3), **kw}), **{name: (lambda cfg=cfg, **kw: ConvVAE(**{**cfg, **kw}))
                                          for name, cfg in SEED_ARCHITECTURES.items()}}


def _is_vae(model) -> bool:
    return isinstance(model, (ConvVAE, MLPVAE))


def _args(model, x):
    return (x, KEY) if _is_vae(model) else (x,)


def _size(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


# Per model, at its seed's image size: latent size, the feature maps after each convolution (down_i,
# in the encoder) and transposed convolution (up_i; "out": seed 004's last convolution), as (H, W, C),
# the sizes the seeds' comments state, and the parameter count of a faithful PyTorch copy
# (sum(p.numel() for p in model.parameters())); seed 001's conv VAE is designed here (no copy).
SEED_SHAPES = {
    "seed003_mlp_ae": (MLPAutoencoder(), 20, {}, 644_804),
    "seed004_conv_ae": (ConvAutoencoder(), 2, {"down_0": (14, 14, 16), "down_1": (7, 7, 32), "up_0": (14, 14, 16),
                                               "up_1": (28, 28, 1)}, 17_411),
    "seed001_conv_ae": (FullyConvAutoencoder(), 96 * 2 * 2, {
        "down_0": (16, 16, 12), "down_1": (8, 8, 24), "down_2": (4, 4, 48), "down_3": (2, 2, 96),
        "up_0": (4, 4, 48), "up_1": (8, 8, 24), "up_2": (16, 16, 12), "up_3": (32, 32, 3)}, 194_955),
    "seed001_mlp_vae": (MLPVAE(hidden=(128,), latent_dim=16, image_shape=(32, 32, 3)), 16, {}, 795_936),
    "seed001_cifar": (ConvVAE(**SEED_ARCHITECTURES["seed001_cifar"]), 16, {
        "down_3": (2, 2, 96), "up_0": (4, 4, 48), "up_3": (32, 32, 3)}, 194_955 + (384 * 32 + 32) + (16 * 384 + 384)),
    "seed003": (ConvVAE(**SEED_ARCHITECTURES["seed003"]), 128, {
        "down_0": (14, 14, 32), "down_1": (7, 7, 64), "down_2": (3, 3, 128),
        "up_0": (7, 7, 64), "up_1": (14, 14, 32), "up_2": (28, 28, 1)}, 772_801),
    "seed003_celeba": (ConvVAE(**SEED_ARCHITECTURES["seed003_celeba"]), 256, {
        "down_0": (32, 32, 32), "down_1": (16, 16, 64), "down_2": (8, 8, 128), "down_3": (4, 4, 256),
        "up_0": (8, 8, 128), "up_1": (16, 16, 64), "up_2": (32, 32, 32), "up_3": (64, 64, 3)}, 4_531_779),
    "seed004": (ConvVAE(**SEED_ARCHITECTURES["seed004"]), 2, {
        "down_0": (14, 14, 32), "down_1": (7, 7, 64), "up_0": (14, 14, 64), "up_1": (28, 28, 32),
        "out": (28, 28, 1)}, 134_165),
}


@pytest.mark.parametrize("name", SEED_SHAPES)
def test_each_model_has_its_seeds_shapes_and_parameter_count(name):
    model, latent_dim, maps, num_params = SEED_SHAPES[name]
    x = jnp.zeros((5, *model.image_shape))
    variables = jax.eval_shape(model.init, KEY, *_args(model, x))
    out, state = jax.eval_shape(lambda v: model.apply(v, *_args(model, x), capture_intermediates=True,
                                                      mutable=["intermediates"]), variables)
    logits, *stats = out if _is_vae(model) else (out,)
    assert model.latent_dim == latent_dim and logits.shape == x.shape and model.output == "sigmoid"
    assert all(s.shape == (5, latent_dim) for s in stats)
    seen = {layer: value["__call__"][0].shape for part in ("encoder", "decoder")
            for layer, value in state["intermediates"].get(part, {}).items() if layer in maps}
    assert seen == {layer: (5, *shape) for layer, shape in maps.items()}
    assert _size(variables["params"]) == num_params


def test_seed001_autoencoder_code_is_its_96x2x2_feature_map():
    model = FullyConvAutoencoder()

    @jax.jit
    def code_and_logits(x):
        variables = model.init(KEY, x)
        z = model.apply(variables, x, method="encode")
        return z, model.apply(variables, z, method="decode"), model.apply(variables, x)

    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)), jnp.float32)
    z, decoded, logits = code_and_logits(x)
    assert model.code_shape == (2, 2, 96) and z.shape == (2, 384) and bool(jnp.all(z >= 0))  # after a ReLU
    np.testing.assert_allclose(decoded, logits, rtol=1e-6)


def _models():
    return [*(cls() for cls in AUTOENCODERS.values()), *(make() for make in VAES.values())]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_model_fits_every_image_size_and_leading_sample_axes(shape):
    """Each transposed convolution's output_padding undoes its convolution's size change: seed 003's
    ConvVAE returns 28x28 (a faithful copy of the seed: 24x24), and every model returns the image's size."""
    for model in _models():
        model = model.clone(image_shape=shape)
        x = jnp.zeros((3, *shape))
        variables = jax.eval_shape(model.init, KEY, *_args(model, x))
        out = jax.eval_shape(lambda v: model.apply(v, *_args(model, x)), variables)
        assert (out[0] if _is_vae(model) else out).shape == x.shape, (type(model).__name__, shape)
        z = jnp.zeros((4, 3, model.latent_dim))  # K samples for each of 3 images (the IWAE bound's layout)
        decoded = jax.eval_shape(lambda v: model.apply(v, z, method="decode"), variables)
        assert decoded.shape == (4, 3, *shape)
        coded = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 3, *shape)), method="encode"), variables)
        assert jax.tree.map(lambda a: a.shape, coded) == (((2, 3, model.latent_dim),) * 2 if _is_vae(model)
                                                          else (2, 3, model.latent_dim))


@pytest.mark.torch
def test_seed003_conv_vae_is_a_pytorch_copy_with_its_first_upsampling_fixed():
    """Same weights in a PyTorch copy of seed 003's ConvVAE, with output_padding=1 in its first
    ConvTranspose2d (3 -> 7): the same mean, log-variance and logits. Flattening reads (c, h, w)
    there, (h, w, c) here, so the dense weights are permuted on the way."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = ConvVAE(**SEED_ARCHITECTURES["seed003"])
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)

    @jax.jit
    def forward(x):
        params = model.init(KEY, x, KEY)["params"]
        mean, log_var = model.apply({"params": params}, x, method="encode")
        return params, mean, log_var, model.apply({"params": params}, mean, method="decode")

    params, mean, log_var, logits = forward(x)

    encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                            nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU())
    fc_mu, fc_logvar, decoder_fc = nn.Linear(1152, 128), nn.Linear(1152, 128), nn.Linear(128, 1152)
    decoder = nn.Sequential(nn.ConvTranspose2d(128, 64, 4, 2, 1, output_padding=1), nn.ReLU(),
                            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731  (a writable copy)
    enc, dec = params["encoder"], params["decoder"]
    head = np.asarray(enc["head"]["kernel"]).reshape(3, 3, 128, 256).transpose(3, 2, 0, 1).reshape(256, 1152)
    with torch.no_grad():
        for i in range(3):
            encoder[2 * i].weight.copy_(t(np.asarray(enc[f"down_{i}"]["kernel"]).transpose(3, 2, 0, 1)))
            encoder[2 * i].bias.copy_(t(enc[f"down_{i}"]["bias"]))
            decoder[2 * i].weight.copy_(t(np.asarray(dec[f"up_{i}"]["kernel"]).transpose(2, 3, 0, 1)))
            decoder[2 * i].bias.copy_(t(dec[f"up_{i}"]["bias"]))
        for fc, rows in ((fc_mu, slice(0, 128)), (fc_logvar, slice(128, 256))):
            fc.weight.copy_(t(head[rows]))
            fc.bias.copy_(t(enc["head"]["bias"][rows]))
        decoder_fc.weight.copy_(t(np.asarray(dec["dense"]["kernel"]).reshape(128, 3, 3, 128).transpose(3, 1, 2, 0)
                                  .reshape(1152, 128)))
        decoder_fc.bias.copy_(t(np.asarray(dec["dense"]["bias"]).reshape(3, 3, 128).transpose(2, 0, 1).reshape(-1)))
        h = encoder(t(x.transpose(0, 3, 1, 2))).reshape(3, -1)
        mu_ref, log_var_ref = fc_mu(h), fc_logvar(h)
        logits_ref = decoder(decoder_fc(mu_ref).view(-1, 128, 3, 3))
    assert logits_ref.shape == (3, 1, 28, 28)
    np.testing.assert_allclose(mean, mu_ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(log_var, log_var_ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, logits_ref.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


def _small_batch_norm_vae():
    return ConvVAE(image_shape=(16, 16, 3), features=(4, 8), latent_dim=3, batch_norm=True)


def test_batch_norm_statistics_move_in_train_mode_with_pytorchs_momentum_and_stay_frozen_in_eval_mode():
    model = _small_batch_norm_vae()
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(6, 16, 16, 3)), jnp.float32)

    @jax.jit
    def train_then_eval(x):
        variables = model.init(KEY, x, KEY)
        _, state = model.apply(variables, x, KEY, train=True, mutable=["batch_stats", "intermediates"],
                               capture_intermediates=lambda mdl, method: mdl.name == "down_0")
        trained = {"params": variables["params"], "batch_stats": state["batch_stats"]}
        frozen = model.apply(trained, x, KEY, mutable=["batch_stats"])[1]["batch_stats"]
        mean = model.apply(trained, x, method="encode")[0]
        codes = mean, model.apply(trained, x[:1], method="encode")[0]
        logits = model.apply(trained, mean, method="decode"), model.apply(trained, mean[:1], method="decode")
        return variables["batch_stats"], state, frozen, codes, logits

    stats, state, frozen, (mean, mean_one), (logits, logits_one) = train_then_eval(x)
    assert set(stats["encoder"]) == {"down_norm_0", "down_norm_1"} and set(stats["decoder"]) == {"up_norm_0"}
    h = state["intermediates"]["encoder"]["down_0"]["__call__"][0]  # the first BatchNorm's input
    new = state["batch_stats"]["encoder"]["down_norm_0"]
    # PyTorch's momentum 0.1: running = 0.9 running + 0.1 batch (from mean 0, variance 1).
    np.testing.assert_allclose(new["mean"], 0.1 * h.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * h.var((0, 1, 2)), rtol=1e-5, atol=1e-6)
    for part, norm in (("encoder", "down_norm_1"), ("decoder", "up_norm_0")):
        moved = state["batch_stats"][part][norm]["mean"] - stats[part][norm]["mean"]
        assert float(jnp.max(jnp.abs(moved))) > 1e-4, norm
    # Eval mode: running statistics used and left as they are; each image's code and logits its own.
    jax.tree.map(np.testing.assert_array_equal, frozen, state["batch_stats"])
    np.testing.assert_allclose(mean_one, mean[:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits_one, logits[:1], rtol=1e-5, atol=1e-5)


def test_masked_rows_stay_out_of_the_batch_statistics():
    """Rows with mask 0 (a last batch padded to full size) change neither the statistics nor the real rows."""
    model = _small_batch_norm_vae()
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 16, 16, 3)), jnp.float32)
    z = jnp.asarray([[0.5, -1.0, 2.0], [1.5, 0.0, -0.3]])
    mask = jnp.array([1.0, 1.0, 0.0, 0.0])

    @jax.jit
    def masked_and_reference(x, z):
        variables = model.init(KEY, x, KEY)
        runs = {}
        for method, real in (("encode", x), ("decode", z)):
            padded = jnp.concatenate([real, jnp.full_like(real, 100.0)])  # padding rows, far from the real ones
            train = lambda inputs, mask=None: model.apply(variables, inputs, train=True, mask=mask,  # noqa: E731
                                                          method=method, mutable=["batch_stats"])
            runs[method] = train(padded, mask), train(real), train(padded)
        return runs

    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
    for method, ((out, stats), (ref, ref_stats), (_, unmasked)) in masked_and_reference(x, z).items():
        jax.tree.map(close, stats, ref_stats)
        jax.tree.map(lambda a, b: close(a[:2], b), out, ref)
        part, norm = ("encoder", "down_norm_0") if method == "encode" else ("decoder", "up_norm_0")
        assert not np.allclose(unmasked["batch_stats"][part][norm]["mean"],
                               ref_stats["batch_stats"][part][norm]["mean"])  # unmasked, they would


@pytest.mark.parametrize("name", [*AUTOENCODERS, *VAES])
@pytest.mark.slow
def test_finite_nonzero_gradients_of_a_squared_error_through_every_layer(name):
    model = (AUTOENCODERS | VAES)[name]()
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(2, *model.image_shape)), jnp.float32)

    @jax.jit
    def gradients(x):
        variables = model.init(KEY, *_args(model, x))
        stats = {k: v for k, v in variables.items() if k != "params"}  # BatchNorm's, updated in train mode

        def loss(params):
            out = model.apply({"params": params, **stats}, *_args(model, x), train=True, mutable=list(stats))[0]
            logits = out[0] if _is_vae(model) else out
            return jnp.mean(jnp.square(jax.nn.sigmoid(logits) - x))

        return jax.grad(loss)(variables["params"])

    for path, g in jax.tree_util.tree_leaves_with_path(gradients(x)):
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0, jax.tree_util.keystr(path)
