#!/usr/bin/env bash
# Builds, once per machine, Flux's source-controller and kustomize-controller from their
# Go modules into a cache folder outside the repository (like hack/envtest.sh; never
# rebuilt when there), with the Flux CRDs each module ships (config/crd/bases) copied
# beside the binaries. The GitOps test runs both against the test control plane.
#
# Neither main package builds with `go install pkg@version`: each go.mod replaces its
# own api module with ./api, a nested module the module zip leaves out. So the build
# copies the module's source out of the download folder, drops that one replace (the
# same api version comes from the Go proxy instead), and runs `go build` there, with
# every other pin and replace of the upstream go.mod kept. One more replace: the Go proxy
# does not serve github.com/fluxcd/pkg/artifact v0.18.3, which source-controller v1.9.6
# asks for, so it builds with v0.18.0 (same minor, the newest 0.18 the proxy serves).
#
#   hack/flux.sh          build what is missing, print the folder
#   hack/flux.sh --print  print the folder (build nothing; fail if incomplete)
set -euo pipefail

SOURCE_CONTROLLER_VERSION="v1.9.6"
KUSTOMIZE_CONTROLLER_VERSION="v1.9.6"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "flux.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
BIN="${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/flux_source-${SOURCE_CONTROLLER_VERSION}_kustomize-${KUSTOMIZE_CONTROLLER_VERSION}_$(go env GOVERSION)"
NAMES=(source-controller kustomize-controller)

if [[ "${1:-}" == "--print" ]]; then
  for n in "${NAMES[@]}"; do
    [[ -x "$BIN/$n" ]] || die "$BIN/$n is missing; run hack/flux.sh"
    [[ -d "$BIN/crds/$n" ]] || die "$BIN/crds/$n is missing; run hack/flux.sh"
  done
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN/crds"
build() {  # build NAME VERSION [MODULE=MODULE@VERSION ...]: extra replaces
  local name="$1" version="$2" module="github.com/fluxcd/$1"; shift 2
  if [[ -x "$BIN/$name" && -d "$BIN/crds/$name" ]]; then echo "cached  $name" >&2; return; fi
  local started=$SECONDS work
  work="$(mktemp -d)"
  if ! (  # set -e does not act inside an `if`: every step says `|| exit`
    dir="$(cd "$work" && go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" || exit
    cp -r "$dir" "$work/src" && chmod -R u+w "$work/src" && cd "$work/src" || exit
    go mod edit -dropreplace="$module/api" || exit
    go mod download "$module/api" || exit  # records its go.sum lines
    for replace in "$@"; do
      go mod edit -replace="$replace" && go mod download "${replace%%=*}" || exit
    done
    nice go build -ldflags "-s -w" -o "$BIN/.$name.new" . || exit
    rm -rf "$BIN/crds/$name" && cp -r config/crd/bases "$BIN/crds/$name" || exit
    mv "$BIN/.$name.new" "$BIN/$name"
  ) >"$BIN/.$name.log" 2>&1; then
    rm -rf "$work"
    tail -20 "$BIN/.$name.log" >&2; die "could not build $name (log: $BIN/.$name.log)"
  fi
  rm -rf "$work"
  echo "built   $name in $((SECONDS - started))s" >&2
}
build source-controller "$SOURCE_CONTROLLER_VERSION" \
  "github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0"
build kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION"
echo "$BIN"
