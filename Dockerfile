# syntax=docker/dockerfile:1
#
# The runlake image: one image for every scale-out process. The entrypoint is `runlake`,
# so the command picks the role:
#   docker run IMAGE gateway --log kafka://kafka:9092/runlake.events ...
#   docker run IMAGE query --store s3://runlake/tables ...
#   docker run IMAGE compactor --kafka kafka:9092 --tables s3a://runlake/tables ...
# It holds the runlake package with the `scale` extra (pyspark, delta-spark,
# confluent-kafka, minio), a Java 17 runtime for the Spark compactor, and the Spark
# connector jars (Kafka source, Delta, S3A with the AWS SDK bundle) resolved at build time
# by scripts/install_spark_jars.sh. It runs as an unprivileged user (uid 10001).
# S3 endpoint and keys come only from the environment (RUNLAKE_S3_*), never from the image.
#
# A second target, `minio`, builds the MinIO server that docker-compose.yml runs, from the
# same source pin as scripts/install_minio.sh (MinIO publishes no images any more).
#
#   docker build -t runlake .                  # the runlake image (the last stage)
#   docker build --target minio -t runlake-minio .
#
# See docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# MinIO, built from source (dev/test object store for docker-compose.yml)
FROM golang:1.26-bookworm AS minio-build
# Keep equal to MINIO_MODULE_VERSION in scripts/install_minio.sh (a test checks it).
ARG MINIO_MODULE_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
RUN CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=/out \
    go install -trimpath "github.com/minio/minio@${MINIO_MODULE_VERSION}"

FROM debian:bookworm-slim AS minio
# curl: the health check (GET /minio/health/live).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/minio minio \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=minio-build /out/minio /usr/local/bin/minio
USER 10001:10001
EXPOSE 9000
VOLUME ["/data"]
ENTRYPOINT ["minio"]
CMD ["server", "--quiet", "--address", ":9000", "/data"]

# ---------------------------------------------------------------------------------------
# Build: the virtual environment and the Spark connector jars
FROM ${PYTHON_IMAGE} AS build
# Maven resolves the connector jars (it brings a Java 17 runtime: Debian 12's default).
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends maven \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The checkout (see .dockerignore): the package is installed editable, so /app stays the
# source tree the code expects (scripts/ beside it, .runlake/ for the jars).
COPY . /app
RUN python -m venv .venv \
    && .venv/bin/pip install --no-cache-dir -e '.[scale]' \
    && .venv/bin/python -m compileall -q client services spark_jobs
# Resolve the jars into .runlake/jars/spark (and check them against pyspark's own jars,
# which stamps the folder so the compactor's start-up check is a no-op), then move the
# jars aside and drop the rest of .runlake (Maven's repository: the same bytes again).
RUN scripts/install_spark_jars.sh \
    && test -f .runlake/jars/spark/.checked-against-pyspark \
    && mkdir /state \
    && mv .runlake/jars /state/jars \
    && rm -rf .runlake

# ---------------------------------------------------------------------------------------
# Runtime: the runlake image
FROM ${PYTHON_IMAGE} AS runlake
# Java 17 runtime for Spark (pyspark 4.2); tini reaps the JVM's children and forwards
# SIGTERM, so `runlake compactor` stops its streaming query cleanly.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/runlake runlake \
    && mkdir -p /var/lib/runlake \
    && chown 10001:10001 /var/lib/runlake
# Code and venv owned by root (read-only to the process); .runlake/ writable by it (the
# jar installer's lock, Spark's warehouse dir), the jars themselves not.
COPY --from=build /app /app
COPY --from=build /state/jars /app/.runlake/jars
RUN mkdir -p /app/.runlake/spark \
    && chown 10001:10001 /app/.runlake /app/.runlake/spark
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/runlake
WORKDIR /var/lib/runlake
USER 10001:10001
# gateway gRPC, gateway HTTP (health), query gRPC, query HTTP (health)
EXPOSE 5055 5056 5057 5058
ENTRYPOINT ["tini", "--", "runlake"]
CMD ["--help"]
