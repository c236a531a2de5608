"""The fold: the one pure function from log records to table rows, used by every compactor."""

from runlake_services.fold.fold import decode_records, fold

__all__ = ["decode_records", "fold"]
