"""Checks of the deployment files (compose, Dockerfile, SAM template) against the repository."""
