"""Training: one Lightning loop shared by every task, data loaders and feature caches."""
