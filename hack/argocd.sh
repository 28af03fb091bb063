#!/usr/bin/env bash
# Builds, once per machine, Argo CD's `argocd` CLI from its Go module into a cache folder
# outside the repository (like hack/envtest.sh; never rebuilt when there). The Argo CD
# health-check tests run `argocd admin settings resource-overrides health` on the shipped
# Lua scripts: Argo CD's own Lua sandbox, not an imitation of it.
#
# Version: v3.2.11, the newest release this toolchain builds. From v3.3 on the module's
# go.mod replaces gitops-engine with ./gitops-engine, a nested module the module zip
# leaves out and whose pinned version the Go proxy does not serve; from v3.6 it needs
# go >= 1.27; v3.2.12 does not compile (controller/cache/info.go calls
# settings.ValidateExternalURL, which that release's util/settings lacks). v3.2.11
# takes github.com/argoproj/gitops-engine from the Go proxy.
#
# `go install pkg@version` refuses a go.mod with replace directives, so the build copies
# the module's source out of the download folder and runs `go build ./cmd` there, with
# every pin and replace of the upstream go.mod kept. The binary is Argo CD's multi-call
# binary, named argocd so that it runs as the CLI. The web UI is not built: the module
# ships the placeholder ui/dist/app/gitkeep its embed needs.
#
#   hack/argocd.sh          build what is missing, print the folder
#   hack/argocd.sh --print  print the folder (build nothing; fail if incomplete)
set -euo pipefail

ARGOCD_VERSION="v3.2.11"
MODULE="github.com/argoproj/argo-cd/v3"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "argocd.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
BIN="${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/argocd-${ARGOCD_VERSION}_$(go env GOVERSION)"

if [[ "${1:-}" == "--print" ]]; then
  [[ -x "$BIN/argocd" ]] || die "$BIN/argocd is missing; run hack/argocd.sh"
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN"
if [[ -x "$BIN/argocd" ]]; then echo "cached  argocd" >&2; echo "$BIN"; exit 0; fi
started=$SECONDS
work="$(mktemp -d)"
# `argocd version --client` says what it is.
ldflags="-s -w -X $MODULE/common.version=${ARGOCD_VERSION#v} -X $MODULE/common.gitTag=$ARGOCD_VERSION"
if ! (  # set -e does not act inside an `if`: every step says `|| exit`
  dir="$(cd "$work" && go mod download -json "$MODULE@$ARGOCD_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" || exit
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src" && cd "$work/src" || exit
  [[ -e ui/dist/app/gitkeep ]] || exit  # what ui/embed.go embeds
  nice -n 19 go build -ldflags "$ldflags" -o "$BIN/.argocd.new" ./cmd || exit
  mv "$BIN/.argocd.new" "$BIN/argocd"
) >"$BIN/.argocd.log" 2>&1; then
  rm -rf "$work"
  tail -20 "$BIN/.argocd.log" >&2; die "could not build argocd (log: $BIN/.argocd.log)"
fi
rm -rf "$work"
echo "built   argocd in $((SECONDS - started))s" >&2
echo "$BIN"
