#!/usr/bin/env bash
# Build the MinIO server from source with `go install` into .runlake/bin/minio.
#
# MinIO's community edition ships as source only; the Go module proxy serves one version
# of github.com/minio/minio, pinned here (see docs/decisions/0007-scale-out-services.md).
# Module downloads (~1.2 GB) and the build cache (~1 GB) go to a scratch folder under
# .runlake/go that is removed afterwards: only the binary is kept.
# A run with the pinned binary in place returns at once (a stamp records the version).
# No `mc` client: scripts/minio.sh creates the bucket with a signed S3 call (curl).
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=install_minio
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

MINIO_MODULE_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

install_lock minio
bin=$RUNLAKE_DIR/bin/minio
stamp=$RUNLAKE_DIR/bin/.minio-version
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_MODULE_VERSION" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || die "needs the Go toolchain (go) on PATH"

log "building github.com/minio/minio@$MINIO_MODULE_VERSION into .runlake/bin (first run: minutes)"
mkdir -p "$RUNLAKE_DIR/bin" "$RUNLAKE_DIR/go"
scratch=$(mktemp -d "$RUNLAKE_DIR/go/build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
t0=$SECONDS
# CGO off: a static binary, no C toolchain needed. GOTOOLCHAIN=local: never fetch a Go
# toolchain. -modcacherw: the module cache can be deleted with a plain rm -rf.
env GOBIN="$RUNLAKE_DIR/bin" GOMODCACHE="$scratch/mod" GOCACHE="$scratch/cache" \
  GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local \
  go install -trimpath "github.com/minio/minio@$MINIO_MODULE_VERSION"
echo "$MINIO_MODULE_VERSION" >"$stamp"
log "built .runlake/bin/minio ($(du -h "$bin" | cut -f1)) in $((SECONDS - t0))s"
