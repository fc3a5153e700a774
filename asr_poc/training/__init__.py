"""The training loop, run folders, checkpoints and background launching."""
