#!/usr/bin/env bash
# Sets a fresh machine up for galleon's demo and tests, idempotently:
#   1. Debian packages: the distribution registry, skopeo (reference client for
#      benchmarks), jq (docs/gitops.md's Argo CD recipe), Chromium (the dashboard's test);
#   2. a virtualenv in .venv with galleon and its pinned dev dependencies, then the
#      test kit (tests/kit: `galleon-testkit`, a separate dev-only distribution),
#      both editable; reinstalled when either pyproject.toml changes;
#   3. the control-plane binaries and kubectl, built once per machine by hack/envtest.sh, and
#      prometheus and promtool by hack/prometheus.sh, krew by hack/krew.sh, Flux's
#      controllers by hack/flux.sh, the argocd CLI by hack/argocd.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# containerd, runc, the CNI plugins, busybox-static and iproute2 run the real nodes.
# chromium: the headless browser the dashboard's tests open the page in (Playwright drives it).
# git: `git http-backend` serves the GitOps test's repository to Flux.
# jq: the Argo CD tests run docs/gitops.md's install recipe, a jq command.
PACKAGES=(docker-registry skopeo jq containerd runc containernetworking-plugins busybox-static iproute2 iptables chromium git)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package starts a registry on :5000 where an init system runs; we start our own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml tests/kit/pyproject.toml | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip==25.3
  .venv/bin/python -m pip install -q -e '.[dev]'
  .venv/bin/python -m pip install -q -e tests/kit
  rm -f .venv/.installed-*; touch "$stamp"
fi

hack/envtest.sh
hack/prometheus.sh  # promtool and prometheus for the alert-rule and dashboard tests
hack/krew.sh >/dev/null  # krew, which the plugin's packaging test installs it with
hack/flux.sh >/dev/null  # Flux's source- and kustomize-controller for the GitOps test
hack/argocd.sh >/dev/null  # the argocd CLI, which judges the Argo CD health checks
