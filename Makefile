# galleon's everyday commands. `make demo` and `make test` work on a fresh machine.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test unit integration check lint crds generate bench image chart clean
setup:  ## install system packages, the virtualenv and the control-plane binaries
	hack/setup.sh

demo: setup  ## local control plane + registries + operator + examples, showing a rollout
	$(PY) hack/demo.py

test: setup check chart  ## every test: unit and integration (real control plane, real registries)
	$(PY) -m pytest $(PYTEST_ARGS)

unit:  ## the fast pure tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

check:  ## lint, types, import contracts, CRD drift, alert rules (promtool)
	$(PY) -m ruff check operator tests hack
	$(PY) -m ruff format --check operator tests hack
	$(PY) -m mypy
	.venv/bin/lint-imports
	$(PY) hack/gen_crds.py --check
	$(PY) hack/gen_reference.py --check
	$(PY) hack/gen_argocd_health.py --check
	$(PY) -m pytest -q -p no:cacheprovider tests/integration/test_alert_rules.py

crds:  ## regenerate crds/ (and the chart's copy) and docs/reference.md from the models
	$(PY) hack/gen_crds.py
	$(PY) hack/gen_reference.py

generate: crds  ## what crds does, and the Argo CD health checks from helm/galleon/argocd/src/
	$(PY) hack/gen_argocd_health.py

bench: setup  ## benchmarks; figures go to docs/benchmarks.md
	$(PY) hack/bench_replication.py
	$(PY) hack/bench_controlplane.py
	$(PY) hack/bench_rollout.py

IMAGE ?= ghcr.io/galleon-dev/galleon-operator:0.1.0
image:  ## build the operator image (Dockerfile; needs Docker or podman)
	docker build -t $(IMAGE) .

chart:  ## lint and render the Helm chart with the helm binary hack/envtest.sh builds
	$$(hack/envtest.sh --print | tail -1)/helm lint --strict helm/galleon
	$$(hack/envtest.sh --print | tail -1)/helm template galleon helm/galleon --namespace galleon-system >/dev/null

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
