"""Offline evaluation: metrics, baselines, slices, the promotion gate and plots."""
