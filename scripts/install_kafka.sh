#!/usr/bin/env bash
# Install the Apache Kafka broker (KRaft mode) from its Maven Central jars into
# .runlake/jars/kafka (pom: scripts/jars/kafka/pom.xml). No distribution tarball: the
# broker runs straight from these jars (scripts/kafka.sh). A second run with the jars in
# place returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=install_kafka
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

resolve_jars scripts/jars/kafka/pom.xml kafka
