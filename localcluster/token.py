"""Least-privilege credentials for tests: a ServiceAccount bound to a Role of the given rules."""
from . import config
from .api import Api


def mint_token(namespace, name, rules, cfg=None, expiration_seconds=3600, create_namespace=True):
    """Create (or update) ServiceAccount `name`, Role `name` with `rules` and their RoleBinding in
    `namespace`, then request a token (TokenRequest).

    Returns {"host", "token", "ca_cert", "namespace", "service_account"}: enough to connect.
    """
    cfg = cfg or config.load()
    api = Api.admin(cfg)
    if create_namespace:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": namespace}})
    meta = {"name": name, "namespace": namespace}
    api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts",
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules}
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    if api.create(f"{rbac}/roles", role) is None:  # exists: make its rules exactly these
        api.request("PUT", f"{rbac}/roles/{name}", role)
    api.create(f"{rbac}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    resp = api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration_seconds}})
    return {"host": cfg.server, "token": resp["status"]["token"], "ca_cert": str(cfg.pki_dir / "ca.crt"),
            "namespace": namespace, "service_account": name}
