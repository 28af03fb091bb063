#!/usr/bin/env bash
# Builds, once per machine, krew (the kubectl plugin manager) from its Go module into a
# cache folder outside the repository (like hack/bench-tools.sh; never rebuilt when
# there). The tests install the plugin's krew manifest and archive with it.
#
#   hack/krew.sh          build what is missing, print the folder
#   hack/krew.sh --print  print the folder (build nothing; fail if incomplete)
set -euo pipefail

KREW_VERSION="v0.4.3"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "krew.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
BIN="${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/krew-${KREW_VERSION}_$(go env GOVERSION)"

if [[ "${1:-}" == "--print" ]]; then
  [[ -x "$BIN/krew" ]] || die "$BIN/krew is missing; run hack/krew.sh"
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN"
if [[ -x "$BIN/krew" ]]; then
  echo "cached  krew" >&2
else
  started=$SECONDS
  (cd "$BIN" && GOBIN="$BIN" nice go install -ldflags "-s -w" "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION") \
    >"$BIN/.krew.log" 2>&1 || { tail -20 "$BIN/.krew.log" >&2; die "could not build krew (log: $BIN/.krew.log)"; }
  echo "built   krew in $((SECONDS - started))s" >&2
fi
echo "$BIN"
