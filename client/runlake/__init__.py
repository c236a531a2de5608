"""runlake: track, find and query machine-learning runs."""
