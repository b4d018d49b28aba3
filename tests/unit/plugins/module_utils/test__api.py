"""Pure parts of raw API access: exec URLs, LIST paths, and the one wording of API errors."""
import threading

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    ThreadClients,
    api_error,
    api_error_message,
    exec_url,
    pods_path,
    status_message,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError

try:
    from urllib.parse import parse_qsl, urlparse
except ImportError:  # pragma: no cover
    from urlparse import parse_qsl, urlparse


def test_exec_url_passes_argv_verbatim_without_stdin_or_tty():
    url = exec_url("https://10.250.0.2:6443/", "db", "pg-0", "pg", ["/usr/bin/printf", "%s|", "a b", "c&d=e"])
    parsed = urlparse(url)
    assert (parsed.scheme, parsed.path) == ("wss", "/api/v1/namespaces/db/pods/pg-0/exec")
    query = parse_qsl(parsed.query, keep_blank_values=True)
    assert [v for k, v in query if k == "command"] == ["/usr/bin/printf", "%s|", "a b", "c&d=e"]
    assert dict((k, v) for k, v in query if k != "command") == {
        "container": "pg", "stdin": "false", "stdout": "true", "stderr": "true", "tty": "false"}


def test_pods_paths():
    assert pods_path() == "/api/v1/pods"
    assert pods_path("team-a") == "/api/v1/namespaces/team-a/pods"


def test_status_message():
    assert status_message(b'{"message": "forbidden"}', "x") == "forbidden"
    assert status_message(b"<html>", "fallback") == "fallback"
    assert status_message(None, "fallback") == "fallback"


class FakeApiException(Exception):
    def __init__(self, status, body=None, reason=None):
        super().__init__(reason)
        self.status, self.body, self.reason = status, body, reason


def test_forbidden_names_the_permission():
    exc = FakeApiException(403, '{"message": "pods is forbidden: User \\"x\\" cannot list resource"}')
    with pytest.raises(AuthorizationError) as info:
        raise api_error(exc, "list pods in namespace db")
    assert "may not list pods in namespace db" in str(info.value)
    assert "cannot list resource" in str(info.value)


def test_other_api_errors_keep_status_and_message():
    message = str(api_error(FakeApiException(500, "not json", "Internal"), "list pods"))
    assert message == "Could not list pods: API error 500: not json"


def test_one_wording_for_401_403_other_and_no_answer():
    assert api_error_message(403, "list pods", "no", "the verb list on pods") == \
        "Forbidden: the credentials may not list pods (RBAC needs the verb list on pods): no"
    assert api_error_message(401, "list pods", "bad token") == \
        "Unauthorized: the API server rejected the credentials while trying to list pods: bad token"
    assert api_error_message(0, "list pods", "connection refused") == "Could not list pods: connection refused"
    assert isinstance(api_error(ApiRequestError(401, "x"), "list pods"), AuthorizationError)
    other = api_error(ApiRequestError(500, "x"), "list pods", default=ValueError)
    assert isinstance(other, ValueError) and not isinstance(other, AuthorizationError)


def test_a_server_that_never_answers_fails_the_get_within_its_timeout():
    """A real socket that accepts and stays silent (no mock: the client's own timeout must end the call)."""
    import socket
    import time

    import kubernetes

    from ansible_collections.kubehooks.backup.plugins.module_utils import _api

    assert _api.DEFAULT_REQUEST_TIMEOUT == (10, 60)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        configuration = kubernetes.client.Configuration()
        configuration.host = "http://127.0.0.1:%d" % server.getsockname()[1]
        client = kubernetes.client.ApiClient(configuration)
        started = time.monotonic()
        with pytest.raises(_api.ApiRequestError) as info:
            _api.api_getter(client, request_timeout=(1, 1))("/api/v1/pods")
        assert time.monotonic() - started < 10 and info.value.status == 0
        assert "timed out" in str(info.value).lower()
    finally:
        server.close()


def test_thread_clients_one_per_thread_all_closed():
    made = []

    class Client(object):
        closed = False

        def close(self):
            self.closed = True
            raise RuntimeError("closing is best effort")  # never hides the others

    def factory():
        made.append(Client())
        return made[-1]

    seen = {}
    with ThreadClients(factory) as clients:
        def work(key):
            seen[key] = (clients.get(), clients.get())
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        work("main")
    assert len(made) == 4 and all(first is second for first, second in seen.values())
    assert len(set(id(first) for first, _second in seen.values())) == 4
    assert all(client.closed for client in made)


# --------------------------------------------------------------------------------------------------
# One TLS context per TLS setting, shared by every exec websocket of the process
# --------------------------------------------------------------------------------------------------

def _fresh_contexts(monkeypatch):
    from ansible_collections.kubehooks.backup.plugins.module_utils import _api
    monkeypatch.setattr(_api, "_SSL_CONTEXTS", {})
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    monkeypatch.delenv("WEBSOCKET_CLIENT_CA_BUNDLE", raising=False)
    return _api


def test_shared_ssl_context_is_built_once_per_setting_and_verifies_like_websocket_client(monkeypatch):
    import ssl
    import certifi
    _api = _fresh_contexts(monkeypatch)
    verified = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": certifi.where()}
    first = _api.shared_ssl_context(dict(verified))
    assert first is _api.shared_ssl_context(dict(verified, server_hostname="api.example"))  # SNI is per socket
    assert (first.verify_mode, first.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert first.cert_store_stats()["x509_ca"] > 0
    no_hostname = _api.shared_ssl_context(dict(verified, check_hostname=False))
    assert no_hostname is not first and (no_hostname.verify_mode, no_hostname.check_hostname) == (ssl.CERT_REQUIRED, False)
    insecure = _api.shared_ssl_context({"cert_reqs": ssl.CERT_NONE})
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)


def test_shared_ssl_context_leaves_what_it_does_not_mirror_to_websocket_client(monkeypatch, tmp_path):
    import ssl
    import certifi
    _api = _fresh_contexts(monkeypatch)
    assert _api.shared_ssl_context({"cert_reqs": ssl.CERT_REQUIRED, "ciphers": "HIGH"}) is None
    assert _api.shared_ssl_context({"context": ssl.create_default_context()}) is None
    # A CA file that cannot be loaded: the library builds its own context and reports its own error.
    assert _api.shared_ssl_context({"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(tmp_path / "missing.crt")}) is None
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys"))
    assert _api.shared_ssl_context({"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": certifi.where()}) is None


def test_exec_websockets_get_the_shared_context(monkeypatch):
    import ssl
    import certifi
    _api = _fresh_contexts(monkeypatch)
    sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": certifi.where()}
    first = _api._TimedWebSocket(sslopt=dict(sslopt))
    second = _api._TimedWebSocket(sslopt=dict(sslopt))
    assert first.sock_opt.sslopt["context"] is second.sock_opt.sslopt["context"]
    assert first.sock_opt.sslopt["context"] is _api.shared_ssl_context(sslopt)
