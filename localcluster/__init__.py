"""Local cluster for kubehooks.backup: one real node plus kwok fake nodes, built and run by this package.

Run ``python3 -m localcluster --help`` from the repository root.
"""


def kubectl_path():
    """Absolute path of the kubectl built with the cluster (its version matches the apiserver)."""
    from . import config
    return str(config.load().kubectl)


def kubeconfig_path():
    """Absolute path of the admin kubeconfig (server https://10.250.0.2:6443, static admin token)."""
    from . import config
    return str(config.load().kubeconfig)
