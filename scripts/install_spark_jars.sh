#!/usr/bin/env bash
# Install the Spark connector jars (Kafka source, Delta Lake, S3A + AWS SDK v2) that match
# the pinned pyspark into .runlake/jars/spark (pom: scripts/jars/spark/pom.xml), then check
# that none of them duplicates a jar the pyspark wheel ships. A second run with the jars in
# place returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=install_spark_jars
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

dest=$RUNLAKE_DIR/jars/spark
checked=$dest/.checked-against-pyspark
resolve_jars scripts/jars/spark/pom.xml spark

# The overlap check needs the installed pyspark (scripts/bootstrap.sh); it runs once per
# resolution and per pyspark version.
pyspark_jars=$(find .venv/lib -maxdepth 4 -type d -path '*/site-packages/pyspark/jars' 2>/dev/null | head -n 1)
if [ -z "$pyspark_jars" ]; then
  log "no pyspark in .venv yet (scripts/bootstrap.sh installs it): overlap check skipped"
  exit 0
fi
pyspark_version=$(find "$pyspark_jars/../.." -maxdepth 1 -name 'pyspark-*.dist-info' -printf '%f\n' | sed 's/\.dist-info$//')
if [ "$(cat "$checked" 2>/dev/null)" = "$pyspark_version" ]; then
  exit 0
fi
# artifact name = file name less "-<version>.jar" (the version starts with a digit)
names() { find "$1" -maxdepth 1 -name '*.jar' -printf '%f\n' | sed -E 's/-[0-9][^-]*(-[^-]+)*\.jar$//' | sort -u; }
overlap=$(comm -12 <(names "$dest") <(names "$pyspark_jars"))
if [ -n "$overlap" ]; then
  die "jars in .runlake/jars/spark that $pyspark_version already ships (exclude them in scripts/jars/spark/pom.xml): $(echo "$overlap" | tr '\n' ' ')"
fi
echo "$pyspark_version" >"$checked"
log "no overlap with $pyspark_version's jars"
