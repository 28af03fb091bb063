#!/usr/bin/env bash
# Builds, once per machine, the peer tools the benchmarks measure galleon against:
# crane (go-containerregistry) and regctl (regclient), from their Go modules, into a
# cache folder outside the repository (like hack/envtest.sh; never rebuilt when there).
#
#   hack/bench-tools.sh          build what is missing, print the folder
#   hack/bench-tools.sh --print  print the folder (build nothing; fail if incomplete)
set -euo pipefail

CRANE_VERSION="v0.22.1"
REGCTL_VERSION="v0.11.7"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "bench-tools.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
BIN="${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/bench_crane-${CRANE_VERSION}_regctl-${REGCTL_VERSION}_$(go env GOVERSION)"

if [[ "${1:-}" == "--print" ]]; then
  for n in crane regctl; do [[ -x "$BIN/$n" ]] || die "$BIN/$n is missing; run hack/bench-tools.sh"; done
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN"
build() {  # build NAME PACKAGE@VERSION
  if [[ -x "$BIN/$1" ]]; then echo "cached  $1" >&2; return; fi
  local started=$SECONDS
  (cd "$BIN" && GOBIN="$BIN" go install -ldflags "-s -w" "$2") >"$BIN/.$1.log" 2>&1 \
    || { tail -20 "$BIN/.$1.log" >&2; die "could not build $1 (log: $BIN/.$1.log)"; }
  echo "built   $1 in $((SECONDS - started))s" >&2
}
build crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
build regctl "github.com/regclient/regclient/cmd/regctl@$REGCTL_VERSION"
echo "$BIN"
