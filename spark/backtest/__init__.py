"""Backtests of the live feature, model, gate, policy and executor code over recorded ticks."""
