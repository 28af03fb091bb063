#!/usr/bin/env bash
# Try galleon on real pods: a kind cluster whose nodes are labelled with the example
# regions, plus one local registry per replica location (ports 5101/5102, 5201/5202,
# 5301/5302, as examples/01-regions.yaml names them). Needs Docker and kind.
# (The development machines have no Docker; there `make demo` uses kwok instead.)
#
#   hack/kind.sh            # create cluster "galleon" and the registries
#   hack/kind.sh delete     # remove them
set -euo pipefail
CLUSTER=${CLUSTER:-galleon}
PORTS=(5101 5102 5201 5202 5301 5302)

if [[ "${1:-}" == "delete" ]]; then
  kind delete cluster --name "$CLUSTER"
  for port in "${PORTS[@]}"; do docker rm -f "galleon-registry-$port" >/dev/null 2>&1 || true; done
  exit 0
fi

for port in "${PORTS[@]}"; do
  docker inspect "galleon-registry-$port" >/dev/null 2>&1 ||
    docker run -d --restart=always --name "galleon-registry-$port" \
      -e REGISTRY_STORAGE_DELETE_ENABLED=true -p "127.0.0.1:$port:5000" registry:2
done

# Nodes reach the registries on the host as 127.0.0.1:<port> through containerd mirrors.
cat <<YAML | kind create cluster --name "$CLUSTER" --config=-
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
nodes:
- role: control-plane
  labels: {topology.kubernetes.io/region: westcentralus}
- role: worker
  labels: {topology.kubernetes.io/region: southcentralus}
- role: worker
  labels: {topology.kubernetes.io/region: eastus2}
- role: worker
  labels: {topology.kubernetes.io/region: eastus2}
YAML

for port in "${PORTS[@]}"; do docker network connect kind "galleon-registry-$port" 2>/dev/null || true; done
for node in $(kind get nodes --name "$CLUSTER"); do
  for port in "${PORTS[@]}"; do
    dir="/etc/containerd/certs.d/127.0.0.1:$port"
    docker exec "$node" mkdir -p "$dir"
    printf '[host."http://galleon-registry-%s:5000"]\n' "$port" | docker exec -i "$node" cp /dev/stdin "$dir/hosts.toml"
  done
done

kubectl apply -f crds/
echo "cluster $CLUSTER ready: run the operator (galleon-operator) and kubectl apply -f examples/"
