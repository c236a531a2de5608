"""Benchmarks that print figures (and ratios to MLflow measured in the same run)."""
