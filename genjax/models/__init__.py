"""Flax Linen modules: parameters and forward passes only."""
