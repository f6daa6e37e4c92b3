"""The image every component runs in on a cluster (built from the top-level Dockerfile)."""

PROJECT_IMAGE = "flywheel:0.1.0"
"""Tag of the project image; push it to your registry and retag when deploying."""
