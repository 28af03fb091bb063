"""galleon's test kit: a real local control plane, real registries and the operator
as a process, for the tests, the local demo and the benchmarks.

Rules of this package: it is its own distribution (`galleon-testkit`, in
`tests/kit/`), installed only into the development virtualenv by hack/setup.sh and
never into the operator's wheel or image; it may import `galleon`, but nothing in
`galleon` imports it (an import-linter contract checks that). The pieces start
real processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kwok, the distribution registry, the operator) on 127.0.0.1 and stop exactly what
they started.
"""
