"""Drift detection: data drift on feature distributions, concept drift on prediction errors."""
