"""_args: the secrets of a kubeconfig given as a dict (masked by the module wrapper), and the one check of a count."""
import re

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._args import kubeconfig_secrets, require_count
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError


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


@pytest.mark.parametrize("value", [0, -1, True, False, 1.5, "3", None])
def test_require_count_refuses_what_is_not_a_whole_number_of_at_least_one(value):
    with pytest.raises(KubehooksError, match=r"^volume_parallelism must be a whole number of at least 1, got %s$"
                       % re.escape(repr(value))):
        require_count("volume_parallelism", value)


def test_require_count_returns_the_count_and_names_what_it_wants():
    assert require_count("parallelism", 8) == 8
    with pytest.raises(KubehooksError, match="^t must be a positive number of seconds, got 0$"):
        require_count("t", 0, "a positive number of seconds")
