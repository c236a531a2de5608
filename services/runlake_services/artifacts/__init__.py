"""Artifact stores (local directory, S3/MinIO) and the gateway service over them."""
