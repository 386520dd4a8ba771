"""PyTorch baselines for the conv-VAE benchmark (``benchmarks.conv_vae_speed``): the seeds' models and loops.

* ``seed004``: seed 004's ``Encoder``/``Decoder``/``VAE`` as written (Conv 32, 64 (3x3, stride 2,
  padding 1), ReLU -> Linear 16, ReLU -> heads, latent 2; Linear 7*7*64, ReLU -> ConvTranspose 64,
  32 (3x3, stride 2, padding 1, output_padding 1), ReLU -> Conv 1 (3x3, padding 1) -> Sigmoid),
  its ``vae_loss`` ((BCE(sum) + KL) / batch), Adam 1e-3, and its loop: per batch ``zero_grad``,
  forward, loss, backward, step, ``total_loss += loss.item() * x.size(0)``, over
  ``DataLoader(..., batch_size=128, shuffle=True)`` of MNIST train + test (70,000 images).
  The seed's dataset is torchvision's MNIST with ``ToTensor`` (a PIL image converted per item);
  here it is a ``TensorDataset`` of the same float32 pixels x/255 (and the labels the loop
  unpacks) made once before any timing: the same loop, with less per-item work than the seed's.
* ``seed003``: seed 003's ``ConvVAE`` (Conv 32, 64, 128 (4x4, stride 2, padding 1), ReLU ->
  heads, latent 128 -> Linear 128*3*3 -> ConvTranspose 64, 32, 1, ReLU between, Sigmoid), **fixed
  as genjax fixes it** (:mod:`genjax.models.conv_vae`): as written its decoder returns 24x24 for a
  28x28 input (3 -> 6 -> 12 -> 24) and no loss can be computed; the first ConvTranspose2d here has
  ``output_padding=1`` (3 -> 7 -> 14 -> 28, the sizes its comments state). Pixels x/255 > 0.5, as
  genjax's preset.
* ``seed003_celeba``: seed 003's ``CelebAVAE`` as written (Conv 32, 64, 128, 256, each with
  BatchNorm2d and ReLU -> latent 256 -> ConvTranspose 128, 64, 32 with BatchNorm2d and ReLU, 3 ->
  Sigmoid), 3x64x64, pixels x/255.

Both seed-003 models train with seed 003's ``train_epoch``: ``zero_grad``, forward, its
``vae_loss`` (BCE(sum) + KL, summed over the batch), backward, Adam(1e-3) step, and three
``.item()`` calls per batch, batches of 128 from a shuffling DataLoader.

``channels_last``: the model and every input batch in ``torch.channels_last``; the flatten before
the heads reads the map in (h, w, c) order and the decoder's first map is viewed (B, h, w, c) and
permuted, so no copy is made (the same model up to a permutation of the dense weights; genjax
flattens in that order too).

torch is an optional benchmark dependency. Threads: ``os.cpu_count()`` unless given.

CLI: ``python -m benchmarks.torch_conv_vae --model seed004 --epochs 1 [--images 12800] [--channels-last]``
     ``python -m benchmarks.torch_conv_vae --model seed003_celeba --steps 10``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

BATCH_SIZE = 128
MODELS = ("seed004", "seed003", "seed003_celeba")


def _flatten(h: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``torch.flatten(h, 1)``; for a channels_last map, (h, w, c) order: a view, no copy."""
    return h.permute(0, 2, 3, 1).flatten(1) if channels_last else torch.flatten(h, 1)


def _unflatten(h: torch.Tensor, c: int, s: int, channels_last: bool) -> torch.Tensor:
    """``h.view(-1, c, s, s)``; for channels_last, (B, s, s, c) permuted to NCHW (channels_last strides)."""
    return h.view(-1, s, s, c).permute(0, 3, 1, 2) if channels_last else h.view(-1, c, s, s)


# ---------------------------------------------------------------- seed 004


class Seed004Encoder(nn.Module):
    def __init__(self, latent_dim=2, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)  # 28x28 -> 14x14
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)  # 14x14 -> 7x7
        self.fc = nn.Linear(64 * 7 * 7, 16)
        self.fc_mean = nn.Linear(16, latent_dim)
        self.fc_logvar = nn.Linear(16, latent_dim)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = _flatten(x, self.channels_last)
        x = F.relu(self.fc(x))
        return self.fc_mean(x), self.fc_logvar(x)


class Seed004Decoder(nn.Module):
    def __init__(self, latent_dim=2, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.fc = nn.Linear(latent_dim, 7 * 7 * 64)
        self.deconv1 = nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, z):
        x = F.relu(self.fc(z))
        x = _unflatten(x, 64, 7, self.channels_last)
        x = F.relu(self.deconv1(x))
        x = F.relu(self.deconv2(x))
        return torch.sigmoid(self.out(x))


class Seed004VAE(nn.Module):
    def __init__(self, latent_dim=2, channels_last=False):
        super().__init__()
        self.encoder = Seed004Encoder(latent_dim, channels_last)
        self.decoder = Seed004Decoder(latent_dim, channels_last)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = self.reparameterize(mu, logvar)
        return self.decoder(z), mu, logvar


def seed004_vae_loss(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.size(0)


# ---------------------------------------------------------------- seed 003


class ConvVAE(nn.Module):
    """Seed 003's ConvVAE, its first ConvTranspose2d given output_padding=1 (see the module docstring)."""

    def __init__(self, input_channels=1, latent_dim=128, channels_last=False):
        super().__init__()
        self.latent_dim, self.channels_last = latent_dim, channels_last
        self.encoder_conv = nn.Sequential(
            nn.Conv2d(input_channels, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),  # 28 -> 14
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1), nn.ReLU(),  # 14 -> 7
            nn.Conv2d(64, 128, kernel_size=4, stride=2, padding=1), nn.ReLU(),  # 7 -> 3
        )
        self.fc_mu = nn.Linear(128 * 3 * 3, latent_dim)
        self.fc_logvar = nn.Linear(128 * 3 * 3, latent_dim)
        self.decoder_fc = nn.Linear(latent_dim, 128 * 3 * 3)
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 3 -> 7 (fix)
            nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(32, input_channels, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),  # 14 -> 28
        )

    def encode(self, x):
        h = _flatten(self.encoder_conv(x), self.channels_last)
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        epsilon = torch.randn_like(std)
        return mu + std * epsilon

    def decode(self, z):
        h = _unflatten(self.decoder_fc(z), 128, 3, self.channels_last)
        return self.decoder_conv(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


class CelebAVAE(nn.Module):
    """Seed 003's CelebAVAE (64x64), as written."""

    def __init__(self, input_channels=3, latent_dim=256, channels_last=False):
        super().__init__()
        self.latent_dim, self.channels_last = latent_dim, channels_last
        self.encoder = nn.Sequential(
            nn.Conv2d(input_channels, 32, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 256, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(256 * 4 * 4, latent_dim)
        self.fc_logvar = nn.Linear(256 * 4 * 4, latent_dim)
        self.decoder_fc = nn.Linear(latent_dim, 256 * 4 * 4)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(256, 128, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, input_channels, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),
        )

    def encode(self, x):
        h = _flatten(self.encoder(x), self.channels_last)
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        epsilon = torch.randn_like(std)
        return mu + std * epsilon

    def decode(self, z):
        h = _unflatten(self.decoder_fc(z), 256, 4, self.channels_last)
        return self.decoder(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def kl_divergence_gaussian(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def seed003_vae_loss(x_recon, x, mu, logvar):
    recon_loss = F.binary_cross_entropy(x_recon, x, reduction="sum")
    kl_loss = kl_divergence_gaussian(mu, logvar).sum()
    return recon_loss + kl_loss, recon_loss, kl_loss


# ---------------------------------------------------------------- loops


def build(model: str, channels_last: bool = False) -> nn.Module:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if model == "seed004":
        net = Seed004VAE(2, channels_last)
    elif model == "seed003":
        net = ConvVAE(1, 128, channels_last)
    elif model == "seed003_celeba":
        net = CelebAVAE(3, 256, channels_last)
    else:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    return net.to(memory_format=fmt)


def pixels(model: str, images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 NCHW, once, before any timing: x/255 (ToTensor), or seed003's x/255 > 0.5."""
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2)))
    x = x.to(torch.float32) / 255.0
    return (x > 0.5).to(torch.float32) if model == "seed003" else x.contiguous()


def _loader(model: str, images: np.ndarray, drop_last: bool = False) -> DataLoader:
    x = pixels(model, images)
    labels = torch.zeros(len(x), dtype=torch.int64)  # the (image, label) pairs the seeds' loops unpack
    return DataLoader(TensorDataset(x, labels), batch_size=BATCH_SIZE, shuffle=True, drop_last=drop_last)


def _train_batch(model: str, net, optimizer, x) -> float:
    """One batch of the seed's loop for ``model``; returns what the loop accumulates."""
    if model == "seed004":
        optimizer.zero_grad()
        recon, mu, logvar = net(x)
        loss = seed004_vae_loss(recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        return loss.item() * x.size(0)
    optimizer.zero_grad()
    x_recon, mu, logvar = net(x)
    total_loss, recon_loss, kl_loss = seed003_vae_loss(x_recon, x, mu, logvar)
    total_loss.backward()
    optimizer.step()
    train_loss, _train_recon, _train_kl = total_loss.item(), recon_loss.item(), kl_loss.item()  # as the loop
    return train_loss


def _setup(model: str, channels_last: bool, threads: int | None, seed: int):
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    net = build(model, channels_last)
    net.train()
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


def epoch_seconds(model: str, images: np.ndarray, epochs: int = 1, channels_last: bool = False, warmup: int = 3,
                  seed: int = 0, threads: int | None = None) -> dict:
    """``epochs`` timed epochs of the seed's loop over ``images`` (after ``warmup`` untimed batches)."""
    net, optimizer = _setup(model, channels_last, threads, seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    loader = _loader(model, images)
    for i, (x, _) in enumerate(loader):
        if i == warmup:
            break
        _train_batch(model, net, optimizer, x.contiguous(memory_format=fmt))
    seconds, avg_loss = [], None
    for _ in range(epochs):
        start = time.perf_counter()
        total_loss = 0.0
        for x, _ in loader:
            x = x.contiguous(memory_format=fmt)
            total_loss += _train_batch(model, net, optimizer, x)
        seconds.append(time.perf_counter() - start)
        avg_loss = total_loss / len(loader.dataset)
    return {"epoch_seconds": seconds, "seconds": statistics.median(seconds), "steps": len(loader), "images": len(images),
                "channels_last": channels_last, "avg_loss": avg_loss, "torch_version": torch.__version__,
                "threads": torch.get_num_threads()}


def step_seconds(model: str, images: np.ndarray, steps: int = 20, warmup: int = 3, channels_last: bool = False,
                 seed: int = 0, threads: int | None = None) -> dict:
    """Seconds per step of the seed's loop, over ``steps`` timed batches after ``warmup`` untimed ones
    (``images`` needs (steps + warmup) * 128 of them)."""
    if len(images) < BATCH_SIZE * (steps + warmup):
        raise ValueError(f"{len(images)} images: {steps} + {warmup} steps need {BATCH_SIZE * (steps + warmup)}")
    net, optimizer = _setup(model, channels_last, threads, seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    start = None
    for i, (x, _) in enumerate(_loader(model, images[:BATCH_SIZE * (steps + warmup)], drop_last=True)):
        if i == warmup:
            start = time.perf_counter()
        _train_batch(model, net, optimizer, x.contiguous(memory_format=fmt))
    seconds = time.perf_counter() - start
    return {"seconds_per_step": seconds / steps, "steps": steps, "channels_last": channels_last,
                "torch_version": torch.__version__, "threads": torch.get_num_threads()}


def step_arithmetic(model: str, image_shape, seed: int = 0) -> float:
    """FLOPs of one training step of the seed's loop at batch 128, as PyTorch's ``FlopCounterMode``
    counts them: 2 x multiply-adds of every convolution (forward, weight gradient, input gradient
    where autograd needs it) and every dense layer; elementwise work, the loss and Adam are free.
    Direct convolution arithmetic: no step of this model can be done in fewer such FLOPs."""
    net, optimizer = _setup(model, False, None, seed)
    images = np.random.default_rng(seed).integers(0, 256, (BATCH_SIZE, *image_shape), np.uint8)
    with FlopCounterMode(display=False) as counter:
        _train_batch(model, net, optimizer, pixels(model, images))
    return float(counter.get_total_flops())


# ---------------------------------------------------------------- where PyTorch's time goes


def conv_layers(model: str, image_shape, channels_last: bool = False) -> list[tuple[str, nn.Module, tuple]]:
    """(name, module, NCHW input shape at batch 128) of every convolution of ``model``, in forward order."""
    net = build(model, channels_last)
    found = []
    hooks = [m.register_forward_hook(lambda m, args, out, name=name: found.append((name, m, tuple(args[0].shape))))
             for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    h, w, c = image_shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.no_grad():
        net.train()
        net(torch.rand(BATCH_SIZE, c, h, w).contiguous(memory_format=fmt))
    for hook in hooks:
        hook.remove()
    return found


def conv_layer_seconds(model: str, image_shape, channels_last: bool = False, repeats: int = 10,
                       threads: int | None = None) -> list[dict]:
    """Per convolution of ``model``: median seconds of its forward (autograd on), its weight gradient
    and (but the first layer's, whose input is data) its input gradient, each on its own, at batch 128.
    oneDNN's kernels (PyTorch's CPU convolutions); the bias gradient is left out."""
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    rows = []
    for i, (name, m, shape) in enumerate(conv_layers(model, image_shape, channels_last)):
        x = torch.rand(shape).contiguous(memory_format=fmt).requires_grad_(i > 0)

        def timed(fn):  # called at once, in this iteration
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        fwd = timed(lambda m=m, x=x: m(x))
        y = m(x)
        dy = torch.rand_like(y)
        dw = timed(lambda m=m, y=y, dy=dy: torch.autograd.grad(y, m.weight, dy, retain_graph=True))
        dx = timed(lambda x=x, y=y, dy=dy: torch.autograd.grad(y, x, dy, retain_graph=True)) if i > 0 else 0.0
        rows.append({"name": name, "kind": type(m).__name__, "input": shape, "output": tuple(y.shape), "fwd": fwd, "dw": dw, "dx": dx})
    return rows


def main() -> None:
    from genjax.data import load_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="seed004")
    parser.add_argument("--epochs", type=int, default=1, help="seed004: timed epochs")
    parser.add_argument("--images", type=int, default=70_000, help="seed004: images per epoch (MNIST train + test)")
    parser.add_argument("--steps", type=int, default=20, help="seed003, seed003_celeba: timed steps")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default os.cpu_count())")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.model == "seed003_celeba":
        images = np.random.default_rng(0).integers(0, 256, (BATCH_SIZE * (args.steps + 3), 64, 64, 3), np.uint8)
    else:
        images = np.concatenate([load_split("mnist", s, args.data_dir).images for s in ("train", "test")])
    if args.model == "seed004":
        result = epoch_seconds("seed004", images[:args.images], args.epochs, args.channels_last, threads=args.threads)
    else:
        result = step_seconds(args.model, images, args.steps, channels_last=args.channels_last, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
