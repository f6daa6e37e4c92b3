"""Serving rules: canary routing, the prediction log, the rollout analysis (no server code here)."""
