"""Pure parts of raw API access: exec URLs, LIST paths, and the one wording of API errors."""
import threading

import pytest
from kubernetes.stream import ws_client

from ansible_collections.kubehooks.backup.plugins.module_utils import _exec_socket
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


# --------------------------------------------------------------------------------------------------
# The HTTP upgrade answer read in chunks (HeaderReadAhead), TLS sessions resumed, auth headers reused
# --------------------------------------------------------------------------------------------------

UPGRADE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n")
SUCCESS = b'{"metadata":{},"status":"Success"}'


def _frame(payload, opcode=0x2):
    """A server's (unmasked) websocket frame."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


class _Chunks(object):
    """The raw reads under a HeaderReadAhead: each call returns the next chunk (at most ``size`` of it)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.sizes = []

    def __call__(self, size, buffer=None):
        self.sizes.append(size)
        if not self.chunks:
            return 0 if buffer is not None else b""
        chunk = self.chunks.pop(0)
        if len(chunk) > size:
            chunk, rest = chunk[:size], chunk[size:]
            self.chunks.insert(0, rest)
        if buffer is not None:
            buffer[:len(chunk)] = chunk
            return len(chunk)
        return chunk


class _ReadAheadSocket(object):
    """What websocket-client sees: ``recv`` through a HeaderReadAhead over ``_Chunks``."""

    def __init__(self, chunks):
        from ansible_collections.kubehooks.backup.plugins.module_utils._api import HeaderReadAhead
        self.ended = []
        self.ahead = HeaderReadAhead(lambda: self.ended.append(True))
        self.raw = _Chunks(chunks)

    def recv(self, size):
        return self.ahead.read(size, None, self.raw)

    def gettimeout(self):
        return None


def test_read_ahead_gives_websocket_client_the_header_split_across_reads_and_the_frames_after_it():
    from websocket import ABNF
    from websocket._abnf import frame_buffer
    from websocket._http import read_headers

    header = UPGRADE % b"x" * 1
    frames = _frame(b"\x01hi\n") + _frame(b"\x03" + SUCCESS)
    # The header in three reads (one ends inside "\r\n\r\n"), the first frame in the same read as its end.
    cut = len(header) - 3
    sock = _ReadAheadSocket([header[:20], header[20:cut], header[cut:] + frames[:7], frames[7:]])
    status, headers, _message = read_headers(sock)
    assert status == 101 and headers["upgrade"] == "websocket" and headers["sec-websocket-accept"] == "x"
    assert sock.ended == [True] and not sock.ahead.in_header
    assert sock.raw.sizes == [4096, 4096, 4096]  # 3 reads for the whole header, not one per byte
    assert sock.ahead.pending() == 7  # frame bytes read with the header's end: counted, kept in order
    buffer = frame_buffer(sock.recv, skip_utf8_validation=False)
    first, second = buffer.recv_frame(), buffer.recv_frame()
    assert (first.opcode, first.data, second.data) == (ABNF.OPCODE_BINARY, b"\x01hi\n", b"\x03" + SUCCESS)
    assert sock.raw.sizes[3:] and all(size < 4096 for size in sock.raw.sizes[3:])  # after the header: as asked
    assert sock.ahead.pending() == 0


def test_read_ahead_keeps_a_refused_upgrade_with_its_body():
    from websocket import WebSocketBadStatusException
    from websocket._handshake import _get_resp_headers

    body = b'{"kind":"Status","message":"pods \\"x\\" is forbidden","code":403}'
    answer = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % len(body)) + body
    sock = _ReadAheadSocket([answer[:10], answer[10:]])
    with pytest.raises(WebSocketBadStatusException) as info:
        _get_resp_headers(sock)
    assert info.value.status_code == 403 and info.value.resp_body == body


def test_read_ahead_ends_the_header_at_the_first_blank_line_as_websocket_client_does():
    from ansible_collections.kubehooks.backup.plugins.module_utils._api import HeaderReadAhead

    for answer in (b"HTTP/1.1 101 OK\nA: b\n\nrest", b"HTTP/1.1 101 OK\r\nA: b\r\n \r\nrest"):
        end = answer.index(b"rest")
        ahead = HeaderReadAhead()
        raw = _Chunks([answer[i:i + 1] for i in range(len(answer))])  # one byte per raw read: the worst case
        got = b"".join(ahead.read(1, None, raw) for _byte in range(end))
        assert got == answer[:end] and not ahead.in_header
        assert ahead.read(100, None, raw) == b"r" and raw.sizes[-1] == 100  # no read-ahead after the header
    # recv_into (a buffer) gets the same bytes; an end of stream is an empty read.
    ahead = HeaderReadAhead()
    raw = _Chunks([b"HTTP/1.1 101 OK\r\n\r\nab"])
    into = bytearray(5)
    assert ahead.read(5, into, raw) == 5 and bytes(into) == b"HTTP/"
    assert ahead.read(100, None, raw) == b"1.1 101 OK\r\n\r\nab"
    assert ahead.read(1, None, raw) == b"" and ahead.read(1, bytearray(1), raw) == 0


def test_exec_headers_are_reused_for_ten_seconds_then_asked_again():
    from ansible_collections.kubehooks.backup.plugins.module_utils._api import exec_headers

    class Configuration(object):
        asked = 0

        def auth_settings(self):
            self.asked += 1
            return {"BearerToken": {"in": "header", "key": "Authorization", "value": "Bearer t%d" % self.asked},
                    "query": {"in": "query", "key": "x", "value": "y"}}

    now = [100.0]
    configuration = Configuration()
    first = exec_headers(configuration, clock=lambda: now[0])
    assert first == {"authorization": "Bearer t1"}
    first["authorization"] = "changed by a caller"
    now[0] += 9.5
    assert exec_headers(configuration, clock=lambda: now[0]) == {"authorization": "Bearer t1"}
    assert exec_headers(Configuration(), clock=lambda: now[0]) == {"authorization": "Bearer t1"}  # per configuration
    now[0] += 1
    assert exec_headers(configuration, clock=lambda: now[0]) == {"authorization": "Bearer t2"}
    assert configuration.asked == 2


class _UpgradeServer(object):
    """A real TLS server on 127.0.0.1 that answers exec upgrades as scripted (a certificate of its own).

    Not the API server: the cluster cannot be made to put frames in the same TLS record as the upgrade
    answer, to split the answer over records, or to refuse with a given body on demand; this server
    does exactly that, over real sockets and real TLS, to the real client classes.
    """

    def __init__(self, tmp_path, answers):
        import datetime
        import socket

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"kubehooks-test")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(u"127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca = str(tmp_path / "ca.crt")
        key_path = str(tmp_path / "server.key")
        with open(self.ca, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        self.key_path = key_path
        self.context = self.new_context()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.answers = list(answers)
        self.requests = []
        self.errors = []
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def new_context(self):
        """A server TLS context: a new one has new session ticket keys, as a restarted API server."""
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca, self.key_path)
        return context

    def _serve(self):
        import base64
        import hashlib
        import time

        for answer in self.answers:
            try:
                if answer is None:  # the server "restarts": tickets issued so far are no longer accepted
                    self.context = self.new_context()
                    continue
                conn, _addr = self.listener.accept()
                conn.settimeout(10)
                tls = self.context.wrap_socket(conn, server_side=True)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += tls.recv(4096)
                self.requests.append(request)
                key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                for part in answer(accept):  # each part one TLS record
                    tls.sendall(part)
                    time.sleep(0.05)
                time.sleep(0.2)
                tls.close()
            except Exception as exc:  # pylint: disable=broad-except  # reported by the test
                self.errors.append(exc)

    def client(self, kind="library"):
        """An ApiClient of the kubernetes library, or (``kind="light"``) the RestClient a module gets for a
        configuration _kubeconfig reads."""
        if kind == "light":
            from ansible_collections.kubehooks.backup.plugins.module_utils import _kubeconfig, _rest
            connection = _kubeconfig.Connection()
            connection.host = "https://127.0.0.1:%d" % self.port
            connection.ssl_ca_cert = self.ca
            connection.api_key = {"authorization": "Bearer t0ken"}
            return _rest.RestClient(connection)
        import kubernetes
        configuration = kubernetes.client.Configuration()
        configuration.host = "https://127.0.0.1:%d" % self.port
        configuration.ssl_ca_cert = self.ca
        configuration.api_key = {"authorization": "Bearer t0ken"}  # the key every client version reads
        return kubernetes.client.ApiClient(configuration)

    def close(self):
        self.listener.close()
        self.thread.join(10)


def tls_of(ws):
    """The TLS socket under an exec stream: an _exec_socket.ExecStream's, or a WSClient's."""
    return ws.sock._sock if isinstance(ws, _exec_socket.ExecStream) else ws.sock.sock


@pytest.mark.parametrize("kind", ["library", "light"])
@pytest.mark.parametrize("path", ["direct", "kubernetes-client"])
def test_exec_over_real_tls_frames_in_the_upgrade_record_a_split_header_a_403_and_a_resumed_session(
        monkeypatch, tmp_path, path, kind):
    """Both ways an exec without stdin can go: _exec_socket (direct), and the kubernetes client's WSClient,
    which a configured proxy selects (forced here by direct_exec_target answering None); from either client
    (the library's ApiClient, or the RestClient over a _kubeconfig.Connection)."""
    from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _exec

    _fresh_contexts(monkeypatch)
    if path == "kubernetes-client":
        monkeypatch.setattr(_api, "direct_exec_target", lambda configuration: None)
    frames = _frame(b"\x01hi\n") + _frame(b"\x02oops") + _frame(b"\x03" + SUCCESS) + _frame(b"\x03\xe8", 0x8)
    body = b'{"kind":"Status","message":"pods \\"p\\" is forbidden: cannot create pods/exec","code":403}'
    answers = [
        lambda accept: [UPGRADE % accept + frames],  # the whole exec in the upgrade's TLS record
        lambda accept: [(UPGRADE % accept)[:30], (UPGRADE % accept)[30:] + frames[:3], frames[3:]],  # split
        lambda accept: [b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % len(body) + body],
        lambda accept: [UPGRADE % accept + frames],  # opened by open_exec below: what the socket holds
        None,  # new ticket keys: the kept session is refused, the next exec makes a full handshake
        lambda accept: [UPGRADE % accept + frames],
        lambda accept: [UPGRADE % accept + frames],
    ]
    server = _UpgradeServer(tmp_path, answers)
    try:
        client = server.client(kind)
        results = [_exec.exec_hook(client, "ns", "p", "c", ["/bin/true"], 5) for _attempt in range(3)]
        for result in results[:2]:
            assert (result["status"], result["exit_code"], result["stdout"], result["stderr"]) == (
                "succeeded", 0, "hi\n", "oops"), result
            assert result["duration"] < 3  # nothing waited for a poll that could not see read-ahead bytes
        assert results[2]["status"] == "failed" and "not_executed" not in results[2]
        assert results[2]["error"].startswith("Forbidden: the credentials may not exec into pod ns/p container c")
        assert "cannot create pods/exec" in results[2]["error"]
        ws = _api.open_exec(client, "ns", "p", "c", ["/bin/true"], timeout=5)
        try:
            tls = tls_of(ws)
            assert isinstance(tls, _api._ExecSSLSocket)
            assert tls.session_reused  # the TLS session of an earlier exec to this server
            if path == "direct":
                assert isinstance(ws, _exec_socket.ExecStream)
                assert len(ws.sock._buf) >= len(frames)  # the frames read with the header are kept
            else:
                assert tls.pending() >= len(frames)  # the frames read with the header are visible to a poll check
        finally:
            ws.close(timeout=1)
        reused = []
        for _attempt in range(2):
            ws = _api.open_exec(client, "ns", "p", "c", ["/bin/true"], timeout=5)
            reused.append(tls_of(ws).session_reused)
            ws.close(timeout=1)
        assert reused == [False, True]  # refused ticket: a full handshake, then its new session is resumed
        assert not server.errors
        assert all(b"authorization: Bearer t0ken" in request for request in server.requests)
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["library", "light"])
def test_an_exec_without_stdin_offers_only_v4_and_one_with_stdin_offers_v5_first(monkeypatch, tmp_path, kind):
    """v4 is proxied by the API server as it is; v5 makes it translate the exec into SPDY (see
    EXEC_PROTOCOL_WITHOUT_STDIN).  Only an exec with a standard input needs v5 (closing stdin); from a
    RestClient it goes through the library's WSClient with the same connection, credentials included."""
    from ansible_collections.kubehooks.backup.plugins.module_utils import _api

    _fresh_contexts(monkeypatch)
    frames = _frame(b"\x03" + SUCCESS) + _frame(b"\x03\xe8", 0x8)
    server = _UpgradeServer(tmp_path, [lambda accept: [UPGRADE % accept + frames]] * 3)
    try:
        client = server.client(kind)
        for stdin in (False, True, False):
            ws = _api.open_exec(client, "ns", "p", "c", ["/bin/true"], timeout=5, stdin=stdin)
            ws.close(timeout=1)
        offered = [[line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-protocol:")] for request in server.requests]
        # The client's own offer with stdin: v5 first since kubernetes 31, v4 alone before (the floor, 30.1).
        with_stdin = b"v5.channel.k8s.io,v4.channel.k8s.io" if hasattr(ws_client, "V5_CHANNEL_PROTOCOL") \
            else b"v4.channel.k8s.io"
        assert offered == [[b"v4.channel.k8s.io"], [with_stdin], [b"v4.channel.k8s.io"]]
        assert b"stdin=true" in server.requests[1] and b"stdin=false" in server.requests[2]
        assert all(b"authorization: Bearer t0ken" in request for request in server.requests)
        assert not server.errors
    finally:
        server.close()


def _configuration(**attrs):
    import kubernetes
    configuration = kubernetes.client.Configuration()
    for name, value in attrs.items():
        setattr(configuration, name, value)
    return configuration


def test_direct_exec_target_and_the_tls_options_it_uses(monkeypatch, tmp_path):
    import ssl

    from ansible_collections.kubehooks.backup.plugins.module_utils import _api

    _fresh_contexts(monkeypatch)
    for name in _api._PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    server = _UpgradeServer(tmp_path, [])  # only its CA file is used
    try:
        ca = server.ca
    finally:
        server.close()

    target = _api.direct_exec_target(_configuration(host="https://api.example:6443/prefix/", ssl_ca_cert=ca))
    assert target["address"] == ("api.example", 6443) and target["host_header"] == "api.example:6443"
    assert target["prefix"] == "/prefix" and target["server_hostname"] == "api.example"
    assert target["context"].verify_mode == ssl.CERT_REQUIRED and target["context"].check_hostname

    insecure = _api.direct_exec_target(_configuration(host="https://[::1]", verify_ssl=False))
    assert insecure["address"] == ("::1", 443) and insecure["context"].verify_mode == ssl.CERT_NONE
    assert _api.exec_sslopt(_configuration(host="https://h", verify_ssl=False)) == {"cert_reqs": ssl.CERT_NONE}

    named = _api.exec_sslopt(_configuration(host="https://10.0.0.1", ssl_ca_cert=ca, assert_hostname=False,
                                            cert_file="/c.crt", key_file="/c.key", tls_server_name="kubernetes"))
    assert named == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca, "check_hostname": False,
                     "certfile": "/c.crt", "keyfile": "/c.key", "server_hostname": "kubernetes"}

    plain = _api.direct_exec_target(_configuration(host="http://127.0.0.1:8080"))
    assert plain["context"] is None and plain["address"] == ("127.0.0.1", 8080)

    # Through the kubernetes client (websocket-client's proxy support) whenever a proxy may apply.
    assert _api.direct_exec_target(_configuration(host="https://h", ssl_ca_cert=ca, proxy="http://p:3128")) is None
    assert _api.direct_exec_target(_configuration(host="https://h", ssl_ca_cert=ca,
                                                  proxy_headers={"proxy-authorization": "Basic eDp5"})) is None
    monkeypatch.setenv("https_proxy", "http://p:3128")
    assert _api.direct_exec_target(_configuration(host="https://h", ssl_ca_cert=ca)) is None
