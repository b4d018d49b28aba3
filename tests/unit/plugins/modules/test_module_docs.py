"""ansible-doc of every module shows exactly its options; the k8s action group is exactly the modules that
take the connection options (and need the kubernetes client).

The options a module really accepts are read from the module itself: its main() runs up to the point where
it hands its argument spec to AnsibleModule.
"""
import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.kubehooks.backup.plugins.module_utils import _module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULES_DIR = os.path.join(ROOT, "plugins", "modules")
MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py") and not name.startswith("_"))
BIN = os.path.dirname(sys.executable)
AUTH_OPTIONS = {"kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs", "ca_cert",
                "client_cert", "client_key", "proxy", "no_proxy", "proxy_headers", "persist_config",
                "impersonate_user", "impersonate_groups"}
# Modules that never contact a cluster: no connection options, no kubernetes requirement, not in the group.
OFFLINE = {"backup_info", "backup_record", "restore_info"}


@pytest.fixture(scope="module")
def docs():
    out = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "-t", "module"]
                         + ["kubehooks.backup." + name for name in MODULES],
                         capture_output=True, text=True, check=True, timeout=120, env=dict(os.environ))
    return dict((key.split(".")[-1], value["doc"]) for key, value in json.loads(out.stdout).items())


class _Captured(Exception):
    pass


def accepted_options(name, monkeypatch):
    """The argument spec the module hands to AnsibleModule (option names, aliases not included)."""
    captured = {}

    class Capture(object):
        def __init__(self, argument_spec, **kwargs):
            captured.update(argument_spec)
            raise _Captured()

    real_init = _module.KubehooksModule.__init__

    def init(self, spec, needs_client=True, module_class=None, **kwargs):
        real_init(self, spec, needs_client, module_class=Capture, **kwargs)

    monkeypatch.setattr(_module.KubehooksModule, "__init__", init)
    module = importlib.import_module("ansible_collections.kubehooks.backup.plugins.modules." + name)
    with pytest.raises(_Captured):
        module.main()
    return set(captured)


def test_every_module_is_checked():
    assert {"backup_info", "backup_record", "pod_hooks", "pod_hooks_info", "resource_export"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_shows_exactly_the_accepted_options(name, docs, monkeypatch):
    assert set(docs[name]["options"]) == accepted_options(name, monkeypatch)


@pytest.mark.parametrize("name", MODULES)
def test_connection_options_and_kubernetes_requirement_only_where_a_cluster_is_contacted(name, docs):
    options = set(docs[name]["options"])
    requirements = " ".join(docs[name].get("requirements") or [])
    if name in OFFLINE:
        assert not options & AUTH_OPTIONS
        assert "kubernetes" not in requirements
    else:
        assert AUTH_OPTIONS <= options
        assert "kubernetes >= 30.1.0" in requirements


def test_the_action_group_is_the_modules_with_connection_options(docs):
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        group = yaml.safe_load(handle)["action_groups"]["k8s"]
    assert sorted(group) == sorted(name for name in MODULES if AUTH_OPTIONS <= set(docs[name]["options"]))
