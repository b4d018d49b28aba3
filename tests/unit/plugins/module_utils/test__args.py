"""_args: the secrets of a kubeconfig given as a dict (masked by the module wrapper)."""
from ansible_collections.kubehooks.backup.plugins.module_utils._args import kubeconfig_secrets


def test_kubeconfig_secrets_are_the_secret_fields_anywhere_in_the_dict():
    kubeconfig = {
        "clusters": [{"name": "c", "cluster": {"server": "https://k", "certificate-authority-data": "CA"}}],
        "users": [{"name": "u", "user": {"token": "TOKEN", "client-key-data": "KEY",
                                         "auth-provider": {"config": {"id-token": "ID", "client-secret": "CS"}}}},
                  {"name": "v", "user": {"password": "PW", "username": "bob"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }
    assert kubeconfig_secrets(kubeconfig) == {"CA", "TOKEN", "KEY", "ID", "CS", "PW"}
    assert kubeconfig_secrets({"users": [{"user": {"token": ""}}]}) == set()
    assert kubeconfig_secrets("/root/.kube/config") == set()
