"""PyTorch re-creation of the two teaching notebooks' VAE training loops.

Used as the speed baseline for genjax. Two presets:

* ``seed000``: pixels x/255, 784-400-20 VAE with GELU, MSE(sum) + KL, AdamW lr 1e-3.
* ``seed002``: pixels round(x/255), 784-200-200-20 VAE with LeakyReLU(0.2),
  BCE(sum) + KL, Adam lr 1e-3.

Both use the notebooks' loop: ``DataLoader(TensorDataset(x), batch_size=128,
shuffle=True)`` over in-memory float32 tensors; per batch forward, loss,
zero_grad, backward, step, and ``loss.item()``. torch is an optional
benchmark dependency.

CLI: ``python -m benchmarks.torch_seed_loop --preset seed002 --epochs 3``
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genjax.data import load_split

BATCH_SIZE = 128
LATENT = 20


class VAE(nn.Module):
    """Gaussian encoder (mean and log-variance heads) and a decoder."""

    def __init__(self, encoder: nn.Module, hidden: int, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.mean = nn.Linear(hidden, LATENT)
        self.log_var = nn.Linear(hidden, LATENT)
        self.decoder = decoder

    def forward(self, x):
        h = self.encoder(x)
        mu, log_var = self.mean(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        return self.decoder(z), mu, log_var


def _kl(mu, log_var):
    return -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())


def _build(preset: str):
    """Return (pixel transform, model, loss fn, optimizer) for a preset."""
    if preset == "seed000":
        model = VAE(
            nn.Sequential(nn.Linear(784, 400), nn.GELU()),
            400,
            nn.Sequential(nn.Linear(LATENT, 400), nn.GELU(),
                          nn.Linear(400, 784), nn.Sigmoid()),
        )
        transform = lambda x: x / 255.0
        recon_loss = lambda r, x: F.mse_loss(r, x, reduction="sum")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    elif preset == "seed002":
        model = VAE(
            nn.Sequential(nn.Linear(784, 200), nn.LeakyReLU(0.2),
                          nn.Linear(200, 200), nn.LeakyReLU(0.2)),
            200,
            nn.Sequential(nn.Linear(LATENT, 200), nn.LeakyReLU(0.2),
                          nn.Linear(200, 200), nn.LeakyReLU(0.2),
                          nn.Linear(200, 784), nn.Sigmoid()),
        )
        transform = lambda x: torch.round(x / 255.0)
        recon_loss = lambda r, x: F.binary_cross_entropy(r, x, reduction="sum")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        raise ValueError(f"unknown preset {preset!r}")
    return transform, model, recon_loss, optimizer


def seconds_per_epoch(preset: str, train_images: np.ndarray, epochs: int = 3,
                      seed: int = 0) -> dict:
    """Train ``epochs`` epochs of the preset's notebook loop and time each one."""
    torch.manual_seed(seed)
    transform, model, recon_loss, optimizer = _build(preset)
    raw = torch.from_numpy(np.asarray(train_images, dtype=np.uint8).reshape(-1, 784))
    x_all = transform(raw.to(torch.float32)).contiguous()  # once, before timing
    loader = DataLoader(TensorDataset(x_all), batch_size=BATCH_SIZE, shuffle=True)

    model.train()
    epoch_seconds, epoch_loss = [], 0.0
    for _ in range(epochs):
        epoch_loss = 0.0
        start = time.perf_counter()
        for (x,) in loader:
            recon, mu, log_var = model(x)
            loss = recon_loss(recon, x) + _kl(mu, log_var)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        epoch_seconds.append(time.perf_counter() - start)

    timed = epoch_seconds[1:] if epochs > 1 else epoch_seconds
    return dict(
        preset=preset,
        epoch_seconds=epoch_seconds,
        seconds_per_epoch=statistics.median(timed),
        final_train_loss_per_image=epoch_loss / len(x_all),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["seed000", "seed002"], default="seed002")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="TFDS data dir (default: as genjax resolves it)")
    args = parser.parse_args()

    start = time.perf_counter()
    images = load_split("mnist", "train", args.data_dir).images
    load_seconds = time.perf_counter() - start
    result = seconds_per_epoch(args.preset, images, args.epochs, args.seed)
    result["data_load_seconds"] = load_seconds
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
