"""The objectives of each model family as pure functions: losses and log-densities
(``losses``), the VAE's -ELBO and IWAE bound (``vae``), the autoencoder's errors
(``autoencoder``), the PixelRNN's exact likelihood and scan sampler (``pixelrnn``), the GAN's
models and evaluation (``gan``), latent paths (``latent``)."""
