"""One recipe per model family (build, train, evaluate, sample, save/load), shared by the CLI
scripts, the sweeps, the benchmarks and the public API (:mod:`genjax`)."""
