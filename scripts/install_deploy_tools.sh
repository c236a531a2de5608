#!/usr/bin/env bash
# Build the two tools the static deployment tests use, with `go install`, into
# .runlake/deploy-tools/bin (nothing here talks to a cluster or a Docker engine):
#   helm          Helm v3 (`helm lint`, `helm template` of the chart in helm/)
#   compose-config  scripts/compose_config: the Compose Specification's reference loader
#                 (compose-go, pinned by its go.mod/go.sum) loading a file the way
#                 `docker compose config` does: schema validation, interpolation from the
#                 environment, normalization, consistency checks; prints the project.
# Pinned releases served by the Go module proxy. Module downloads and build caches go to a
# scratch folder that is removed afterwards: only the binaries and version stamps stay.
# A run with both binaries in place and up to date returns at once.
#
#   scripts/install_deploy_tools.sh     # prints the bin folder on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=install_deploy_tools
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0
# The Kubernetes version Helm assumes when no cluster is asked (`helm template`,
# .Capabilities.KubeVersion, `helm lint`'s deprecation rules). Helm's release build derives
# it from its k8s.io/client-go (v0.37.0 in v3.22.0, i.e. Kubernetes 1.37); a plain
# `go install` would leave it at 1.20.
HELM_K8S_MINOR=37

install_lock deploy-tools
dir=$RUNLAKE_DIR/deploy-tools
bin=$dir/bin
helm_want="$HELM_VERSION kubernetes-1.$HELM_K8S_MINOR"
# rebuilt when its source or pins change
compose_want=$(cat scripts/compose_config/main.go scripts/compose_config/go.mod scripts/compose_config/go.sum | sha256sum | cut -d' ' -f1)

installed() { # NAME WANT
  [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1-version" 2>/dev/null)" = "$2" ]
}

if installed helm "$helm_want" && installed compose-config "$compose_want"; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "needs the Go toolchain (go 1.26+) on PATH"
mkdir -p "$bin"
scratch=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# go_env CMD...: a static binary (CGO off), never a downloaded toolchain (GOTOOLCHAIN=local),
# caches in the scratch folder (-modcacherw lets a plain rm -rf remove them).
go_env() {
  env GOMODCACHE="$scratch/mod" GOCACHE="$scratch/cache" GOFLAGS=-modcacherw \
    CGO_ENABLED=0 GOTOOLCHAIN=local "$@"
}

# go_install NAME PACKAGE@VERSION [LDFLAGS]
go_install() {
  local name=$1 pkg=$2 ldflags=${3:-} t0=$SECONDS out=$scratch/gobin
  log "building $pkg into .runlake/deploy-tools/bin/$name (first run: a minute or two)"
  mkdir -p "$out"
  go_env GOBIN="$out" go install -trimpath -ldflags "-s -w $ldflags" "$pkg"
  mv -f "$out/$(basename "${pkg%@*}")" "$bin/$name"
  log "built $name ($(du -h "$bin/$name" | cut -f1)) in $((SECONDS - t0))s"
}

if ! installed helm "$helm_want"; then
  # Helm's release ldflags: its version, and the Kubernetes version above.
  flags="-X $HELM_MODULE/internal/version.version=$HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    flags+=" -X $HELM_MODULE/$pkg.k8sVersionMajor=1 -X $HELM_MODULE/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  go_install helm "$HELM_MODULE/cmd/helm@$HELM_VERSION" "$flags"
  echo "$helm_want" >"$bin/.helm-version"
fi
if ! installed compose-config "$compose_want"; then
  log "building scripts/compose_config into .runlake/deploy-tools/bin/compose-config"
  t0=$SECONDS
  # -mod=readonly: exactly the versions its go.sum names
  (cd scripts/compose_config && go_env go build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "$bin/compose-config" .)
  echo "$compose_want" >"$bin/.compose-config-version"
  log "built compose-config ($(du -h "$bin/compose-config" | cut -f1)) in $((SECONDS - t0))s"
fi
echo "$bin"
