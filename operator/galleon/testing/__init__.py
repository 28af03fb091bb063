"""A real local control plane and real registries, for the tests and the local demo.

Nothing here is imported by the operator itself. The pieces start real processes
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the
distribution registry) on 127.0.0.1 and stop exactly what they started.
"""
