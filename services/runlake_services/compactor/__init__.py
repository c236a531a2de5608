"""Compactors: fold the event log into the Delta tables (embedded: a thread with delta-rs)."""

from runlake_services.compactor.embedded import EmbeddedCompactor

__all__ = ["EmbeddedCompactor"]
