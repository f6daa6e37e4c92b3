"""The MLflow tracking and model registry: runs, versions and the champion/challenger aliases."""
