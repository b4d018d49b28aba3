"""Auth option resolution: module params, then K8S_AUTH_<OPTION>, then K8S_AUTH_<CLIENT ATTRIBUTE>."""
import http.server
import threading

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _client
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


class _HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """A loopback API stand-in: answers every GET with an empty list and keeps the request headers."""

    seen = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.headers)
        body = b'{"kind": "PodList", "items": [], "metadata": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_api():
    """A real HTTP server on 127.0.0.1 (the headers on the wire are what this checks, not a mock)."""
    _HeaderRecorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_port, _HeaderRecorder.seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("groups", [["ops"], ["ops", "dev", "system:authenticated"]])
def test_one_impersonate_group_header_per_group(loopback_api, groups):
    host, seen = loopback_api
    factory = _client.ClientFactory({"host": host, "api_key": "t", "impersonate_user": "bob",
                                     "impersonate_groups": groups}, {})
    get_json = _api.api_getter(factory(), request_timeout=10)
    assert get_json("/api/v1/namespaces/db/pods", [("limit", 1)])["kind"] == "PodList"
    assert get_json("/api/v1/pods")["kind"] == "PodList"  # every request, not only the first
    for headers in seen:
        assert headers.get_all("Impersonate-User") == ["bob"]
        assert headers.get_all("Impersonate-Group") == groups  # one header each, in order
        assert headers.get("Authorization") == "Bearer t"
    assert len(seen) == 2


def test_groups_from_the_environment_are_split_on_commas(loopback_api):
    host, seen = loopback_api
    factory = _client.ClientFactory({"host": host, "api_key": "t"},
                                    {"K8S_AUTH_IMPERSONATE_USER": "bob", "K8S_AUTH_IMPERSONATE_GROUPS": "ops, dev"})
    _api.api_getter(factory(), request_timeout=10)("/api/v1/pods")
    assert seen[0].get_all("Impersonate-Group") == ["ops", "dev"]


def test_no_impersonation_headers_by_default(loopback_api):
    host, seen = loopback_api
    _api.api_getter(_client.ClientFactory({"host": host, "api_key": "t"}, {})(), request_timeout=10)("/api/v1/pods")
    assert seen[0].get_all("Impersonate-User") is None and seen[0].get_all("Impersonate-Group") is None


def test_groups_without_a_user_are_refused():
    with pytest.raises(KubehooksError, match="impersonate_groups needs impersonate_user"):
        _client.ClientFactory({"host": "https://h", "api_key": "t", "impersonate_groups": ["a", "b"]}, {})
