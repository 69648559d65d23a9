"""Inference: one predictor interface for every task, from stamp sets, catalogues or survey tiles."""
