"""Auth option resolution: module params, then K8S_AUTH_<OPTION>, then K8S_AUTH_<CLIENT ATTRIBUTE>."""
import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _client
from ansible_collections.kubehooks.backup.plugins.module_utils._args import AUTH_ARG_SPEC, argument_spec
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

AWX_CREDENTIAL_ENV = {
    # What AWX's "OpenShift or Kubernetes API Bearer Token" credential injects.
    "K8S_AUTH_HOST": "https://10.0.0.1:6443",
    "K8S_AUTH_API_KEY": "sekrit",
    "K8S_AUTH_VERIFY_SSL": "True",
    "K8S_AUTH_SSL_CA_CERT": "/tmp/ca.crt",
}


def test_awx_credential_environment_is_understood():
    auth = _client.resolve_auth({}, AWX_CREDENTIAL_ENV)
    assert auth == {"host": "https://10.0.0.1:6443", "api_key": "sekrit",
                    "verify_ssl": True, "ssl_ca_cert": "/tmp/ca.crt"}


def test_module_parameter_wins_over_environment():
    auth = _client.resolve_auth({"host": "https://param:6443", "validate_certs": False}, AWX_CREDENTIAL_ENV)
    assert auth["host"] == "https://param:6443"
    assert auth["verify_ssl"] is False


def test_option_named_variable_wins_over_attribute_named_variable():
    env = {"K8S_AUTH_VALIDATE_CERTS": "no", "K8S_AUTH_VERIFY_SSL": "yes",
           "K8S_AUTH_CA_CERT": "/a", "K8S_AUTH_SSL_CA_CERT": "/b"}
    auth = _client.resolve_auth({}, env)
    assert auth["verify_ssl"] is False
    assert auth["ssl_ca_cert"] == "/a"


@pytest.mark.parametrize("text,expected", [("false", False), ("0", False), ("No", False),
                                           ("true", True), ("1", True), ("yes", True)])
def test_boolean_variables(text, expected):
    assert _client.resolve_auth({}, {"K8S_AUTH_VERIFY_SSL": text})["verify_ssl"] is expected


def test_cert_key_and_impersonation_variables():
    env = {"K8S_AUTH_CERT_FILE": "/c", "K8S_AUTH_KEY_FILE": "/k", "K8S_AUTH_IMPERSONATE_USER": "bob",
           "K8S_AUTH_IMPERSONATE_GROUPS": "ops, dev"}
    auth = _client.resolve_auth({}, env)
    assert auth["cert_file"] == "/c" and auth["key_file"] == "/k"
    assert auth["impersonate_user"] == "bob"
    assert auth["impersonate_groups"] == ["ops", "dev"]


def test_proxy_headers_from_environment():
    auth = _client.resolve_auth({}, {"K8S_AUTH_PROXY_HEADERS_USER_AGENT": "x/1"})
    assert auth["proxy_headers"] == {"user_agent": "x/1"}


def test_unset_options_are_absent():
    assert _client.resolve_auth({name: None for name in AUTH_ARG_SPEC}, {}) == {}


def test_secrets_are_no_log_and_spec_is_copied():
    spec = argument_spec({"extra": {"type": "str"}})
    assert spec["api_key"]["no_log"] and spec["password"]["no_log"]
    assert spec["proxy_headers"]["options"]["proxy_basic_auth"]["no_log"]
    spec["host"]["type"] = "int"
    assert AUTH_ARG_SPEC["host"]["type"] == "str"


def test_host_and_token_need_no_kubeconfig():
    factory = _client.ClientFactory({"host": "https://h:6443/", "api_key": "t", "validate_certs": False}, {})
    assert factory.host == "https://h:6443"
    assert factory.configuration.api_key == {"authorization": "Bearer t"}
    assert factory.configuration.verify_ssl is False
    first, second = factory(), factory()
    assert first is not second  # one ApiClient per worker thread


def test_kubeconfig_dict_and_context(tmp_path):
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": {"server": "https://a:6443"}},
                     {"name": "d", "cluster": {"server": "https://b:6443"}}],
        "users": [{"name": "u", "user": {"token": "tok"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}},
                     {"name": "b", "context": {"cluster": "d", "user": "u"}}],
    }
    factory = _client.ClientFactory({"kubeconfig": kubeconfig, "context": "b"}, {})
    assert factory.host == "https://b:6443"


def test_missing_kubeconfig_is_a_clear_error(tmp_path):
    with pytest.raises(KubehooksError, match="Could not load the Kubernetes configuration"):
        _client.ClientFactory({"kubeconfig": str(tmp_path / "nope")}, {})


def test_impersonation_headers():
    client = _client.ClientFactory({"host": "https://h", "api_key": "t", "impersonate_user": "bob",
                                    "impersonate_groups": ["ops"]}, {})()
    assert client.default_headers["Impersonate-User"] == "bob"
    assert client.default_headers["Impersonate-Group"] == "ops"


def test_several_impersonated_groups_are_refused():
    with pytest.raises(KubehooksError, match="only one group"):
        _client.ClientFactory({"host": "https://h", "api_key": "t", "impersonate_groups": ["a", "b"]}, {})
