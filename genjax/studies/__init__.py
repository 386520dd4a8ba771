"""Studies: experiments built from several recipes or runs of them (an AE beside a VAE, the
AE's uses, the ablation sweeps, the conditional VAE's scored samples and pictures). Each module
holds one study's flags (``add_flags``), its whole run (``cli_run``) and the ``(parser,
experiment)`` pair its script in ``experiments/`` is made of (``cli_script``)."""
