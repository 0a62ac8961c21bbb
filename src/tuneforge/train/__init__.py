"""The training engine: batching, losses, the loop, checkpoints and run directories."""
