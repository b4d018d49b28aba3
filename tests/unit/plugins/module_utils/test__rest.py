"""RestClient against a real TLS server on 127.0.0.1, side by side with the kubernetes library's ApiClient.

Every case runs through both clients with the same connection settings and must end the same way: the
RestClient replaces the ApiClient for the configurations _kubeconfig reads, so a request succeeds or fails
as it did.  The server is real (sockets, TLS, certificates made here); it is not the API server because
the cluster cannot be given a wrong CA, a certificate for another name, or a client-certificate check
on demand.
"""
import datetime
import http.server
import ipaddress
import json
import ssl
import threading

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _kubeconfig, _rest

KINDS = ["library", "light"]


def _certificates(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(common_name, issuer=None, issuer_key=None, san=None, ca=False):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return cert, key, name

    def write(stem, cert, key):
        cert_path, key_path = str(tmp_path / (stem + ".crt")), str(tmp_path / (stem + ".key"))
        with open(cert_path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cert_path, key_path

    ca, ca_key, ca_name = issue(u"kubehooks-test-ca", ca=True)
    other_ca, other_key, _name = issue(u"another-ca", ca=True)
    paths = {"ca": write("ca", ca, ca_key)[0], "other_ca": write("other-ca", other_ca, other_key)[0]}
    for stem, san in (("server", [x509.IPAddress(ipaddress.ip_address(u"127.0.0.1"))]),
                      ("named", [x509.DNSName(u"api.internal")])):
        cert, key, _name = issue(u"server", ca_name, ca_key, san)
        paths[stem] = write(stem, cert, key)
    cert, key, _name = issue(u"kubehooks-client", ca_name, ca_key)
    paths["client"] = write("client", cert, key)
    return paths


class _Api(http.server.BaseHTTPRequestHandler):
    seen = []

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append((self.command, self.path, self.headers, None))
        if self.path.startswith("/api/v1/namespaces/gone"):
            self._answer(404, {"kind": "Status", "message": "namespaces \"gone\" not found", "code": 404})
        else:
            self._answer(200, {"kind": "PodList", "items": [], "metadata": {}})

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.command, self.path, self.headers, json.loads(body)))
        self._answer(201, {"kind": "ConfigMap", "metadata": {"name": "made"}})

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return _certificates(tmp_path_factory.mktemp("pki"))


def _serve(certificates, cert="server", client_ca=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificates[cert])
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certificates["ca"])
    _Api.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _client(kind, **attrs):
    if kind == "light":
        connection = _kubeconfig.Connection()
        for name, value in attrs.items():
            setattr(connection, name, value)
        return _rest.RestClient(connection)
    import kubernetes
    configuration = kubernetes.client.Configuration()
    for name, value in attrs.items():
        setattr(configuration, name, value)
    return kubernetes.client.ApiClient(configuration)


def _host(server):
    return "https://127.0.0.1:%d" % server.server_port


@pytest.mark.parametrize("kind", KINDS)
def test_requests_headers_query_body_and_an_api_error(certificates, kind):
    server = _serve(certificates)
    try:
        client = _client(kind, host=_host(server), ssl_ca_cert=certificates["ca"],
                         api_key={"authorization": "Bearer t0ken"})
        client.user_agent = "kubehooks.backup"
        get_json = _api.api_getter(client, request_timeout=(5, 5))
        assert get_json("/api/v1/pods", [("labelSelector", "app in (a,b)"), ("limit", 2)])["kind"] == "PodList"
        call = _api.api_caller(client, request_timeout=5)
        made = call("POST", "/api/v1/namespaces/db/configmaps", {"metadata": {"name": "made"}, "data": {"k": "ü"}})
        assert made["metadata"]["name"] == "made"
        with pytest.raises(_api.ApiRequestError) as info:
            get_json("/api/v1/namespaces/gone")
        assert info.value.status == 404 and str(info.value) == 'namespaces "gone" not found'
        (_m, path, headers, _b), (method, _p, post_headers, body) = _Api.seen[:2]
        assert path == "/api/v1/pods?labelSelector=app+in+%28a%2Cb%29&limit=2" or \
            path == "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29&limit=2"
        assert headers["Authorization"] == "Bearer t0ken" and headers["User-Agent"] == "kubehooks.backup"
        assert headers["Accept"] == "application/json"
        assert method == "POST" and post_headers["Content-Type"] == "application/json"
        assert body == {"metadata": {"name": "made"}, "data": {"k": u"ü"}}
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case, attrs, fails", [
    ("wrong CA", dict(ca="other_ca"), "CERTIFICATE_VERIFY_FAILED"),
    ("wrong CA, verification off", dict(ca="other_ca", verify_ssl=False), None),
    ("certificate for another name", dict(cert="named"), "certificate"),
    ("certificate for another name, tls_server_name", dict(cert="named", tls_server_name="api.internal"), None),
    ("client certificate required, none given", dict(client_ca=True), "Max retries"),
    ("client certificate required and given", dict(client_ca=True, client=True), None),
])
def test_tls_settings_succeed_and_fail_as_with_the_library(certificates, kind, case, attrs, fails):
    server = _serve(certificates, cert=attrs.get("cert", "server"), client_ca=attrs.get("client_ca", False))
    try:
        settings = dict(host=_host(server), ssl_ca_cert=certificates[attrs.get("ca", "ca")])
        if "verify_ssl" in attrs:
            settings["verify_ssl"] = attrs["verify_ssl"]
        if "tls_server_name" in attrs:
            settings["tls_server_name"] = attrs["tls_server_name"]
        if attrs.get("client"):
            settings["cert_file"], settings["key_file"] = certificates["client"]
        get_json = _api.api_getter(_client(kind, **settings), request_timeout=(5, 5))
        if fails is None:
            assert get_json("/api/v1/pods")["kind"] == "PodList", case
        else:
            with pytest.raises(_api.ApiRequestError) as info:
                get_json("/api/v1/pods")
            assert info.value.status == 0 and fails.lower() in str(info.value).lower(), (case, str(info.value))
    finally:
        server.shutdown()
        server.server_close()


def test_pool_arguments_follow_the_library():
    """The urllib3 arguments are the library's RESTClientObject's for the same settings."""
    import kubernetes
    connection = _kubeconfig.Connection()
    connection.host, connection.verify_ssl, connection.tls_server_name = "https://h", False, "api.internal"
    connection.ssl_ca_cert, connection.cert_file, connection.key_file = "/ca", "/c", "/k"
    configuration = kubernetes.client.Configuration()
    for name in ("host", "verify_ssl", "tls_server_name", "ssl_ca_cert", "cert_file", "key_file"):
        setattr(configuration, name, getattr(connection, name))
    library = kubernetes.client.ApiClient(configuration).rest_client.pool_manager.connection_pool_kw
    ours = _rest.pool_arguments(connection)
    assert {key: library.get(key) for key in ours} == ours
    client = _rest.RestClient(connection)
    kept = client._pool_manager().connection_pool_kw  # what urllib3 keeps for every pool
    assert {k: v for k, v in kept.items() if v is not None} == {k: v for k, v in library.items() if v is not None}
    client.close()
