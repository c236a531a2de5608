"""Batch scoring on Spark with runlake models (``pip install 'runlake[scale]'``).

>>> import runlake.spark
>>> scored = runlake.spark.score(df, "models:/churn@champion")  # doctest: +SKIP
>>> scored.select("id", "prediction").show()  # doctest: +SKIP
>>> predict = runlake.spark.udf(spark, "models:/churn/3", "double")  # doctest: +SKIP
>>> df.withColumn("p", predict("age", "plan"))  # doctest: +SKIP
>>> job = runlake.spark.score_table(spark, "models:/churn/3", "/data/customers",  # doctest: +SKIP
...                                 "/data/scored")

The model is loaded once per Python worker and fed Arrow batches; its signature is
applied; several outputs become one struct column. ``score_table`` records the job as a
run with its lineage. pyspark is imported only when these are called. See
docs/decisions/0015-batch-scoring.md.
"""

from runlake.spark.score import ScoringJob, score, score_table
from runlake.spark.udf import ModelUdf, udf

__all__ = ["ModelUdf", "ScoringJob", "score", "score_table", "udf"]
