"""Spark jobs of the scale-out deployment (DESIGN.md: ``spark_jobs/``).

``spark_jobs.compactor`` is the Structured Streaming compactor: Kafka → the one Python
fold → Delta on S3 (docs/decisions/0013-spark-compactor.md). pyspark is imported by the
job modules themselves, so importing this package stays cheap.
"""
