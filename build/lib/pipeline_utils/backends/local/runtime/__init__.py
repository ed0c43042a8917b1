"""The local inference runtime: one daemon serving deployments whose kernels run in worker processes."""
