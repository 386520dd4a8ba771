"""The run lifecycle: the epoch loop (``fit``), checkpoints (``checkpoint``), files written
atomically (``files``), the run directory with its resume checks (``run``) and the command
line (``cli``)."""
