#!/usr/bin/env bash
# Builds, once per machine, prometheus and promtool from the Prometheus Go module into
# a cache folder outside the repository (like hack/envtest.sh; never rebuilt when there).
# The tests check the shipped alert rules with promtool and run a real server against
# the operator's metrics. Built without the `builtinassets` tag: no web UI, the HTTP
# API (/api/v1/...) is complete.
#
#   hack/prometheus.sh          build what is missing, print the folder
#   hack/prometheus.sh --print  print the folder (build nothing; fail if incomplete)
set -euo pipefail

PROMETHEUS_VERSION="v0.316.0"   # the Go module version of Prometheus 3.16.0
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "prometheus.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
BIN="${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/prometheus-${PROMETHEUS_VERSION}_$(go env GOVERSION)"

if [[ "${1:-}" == "--print" ]]; then
  for n in prometheus promtool; do [[ -x "$BIN/$n" ]] || die "$BIN/$n is missing; run hack/prometheus.sh"; done
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN"
# 0.316.0 -> 3.16.0, so that `prometheus --version` says what it is.
release="${PROMETHEUS_VERSION#v0.}"; release="$((${release%%.*} / 100)).$((${release%%.*} % 100)).${release#*.}"
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
build() {  # build NAME PACKAGE@VERSION
  if [[ -x "$BIN/$1" ]]; then echo "cached  $1" >&2; return; fi
  local started=$SECONDS
  (cd "$BIN" && GOBIN="$BIN" nice go install -ldflags "$ldflags" "$2") >"$BIN/.$1.log" 2>&1 \
    || { tail -20 "$BIN/.$1.log" >&2; die "could not build $1 (log: $BIN/.$1.log)"; }
  echo "built   $1 in $((SECONDS - started))s" >&2
}
build promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
build prometheus "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
echo "$BIN"
