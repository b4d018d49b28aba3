# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: raw Kubernetes API access (GET/LIST as JSON, exec websockets). Not a public API.

The generated API classes of the Python client (``CoreV1Api`` and its models) cost about a second
to import; a module that lists pods and execs hooks needs none of them.  Everything here goes
with plain paths and plain dicts through a ``_rest.RestClient`` (the configurations ``_kubeconfig``
reads: the library is then not imported at all) or the library's ``ApiClient.call_api``, and execs
through ``_exec_socket`` or the library's ``WSClient``; objects stay in the API's JSON shape.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import ssl
import threading
import time
import weakref

from ansible_collections.kubehooks.backup.plugins.module_utils import _exec_socket
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError, KubehooksError

try:
    from ansible.module_utils.six.moves.urllib.parse import quote, urlencode, urlsplit
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import quote, urlencode, urlsplit

from ansible_collections.kubehooks.backup.plugins.module_utils._rest import RestClient, auth_headers

# The kubernetes library itself is imported only where it is used: by an ApiClient (the configurations
# _kubeconfig leaves to it) and by the exec path with a standard input or a proxy (its WSClient).
try:
    from urllib3.exceptions import HTTPError as Urllib3HTTPError
    from websocket import WebSocket, WebSocketBadStatusException
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module through missing_required_lib
    Urllib3HTTPError = WebSocketBadStatusException = WebSocket = None
    KUBERNETES_IMPORT_ERROR = exc

DEFAULT_PAGE_SIZE = 500
# urllib3's (connect, read) timeout of every GET, LIST and POST: 10 s to connect, then at most
# 60 s of silence between two reads of an answer.  A hung API server fails the call, never the run.
DEFAULT_REQUEST_TIMEOUT = (10, 60)


class ApiRequestError(Exception):
    """A request failed: ``status`` (HTTP status, 0 when there was no answer), ``body`` (bytes or None)."""

    def __init__(self, status, message, body=None):
        super(ApiRequestError, self).__init__(message)
        self.status = status
        self.body = body


def status_message(body, fallback):
    """The ``message`` of a ``metav1.Status`` body, else ``fallback``."""
    try:
        return json.loads(body).get("message") or fallback
    except (ValueError, TypeError, AttributeError):
        return fallback


def api_error_message(status, action, reason, permission="that permission"):
    """The one wording of a failed API request (``action`` reads like "list pods in namespace db").

    403 names the permission RBAC needs, 401 says the credentials were rejected; any other status
    is kept with the API's message; no status means there was no answer.
    """
    if status == 403:
        return "Forbidden: the credentials may not %s (RBAC needs %s): %s" % (action, permission, reason)
    if status == 401:
        return "Unauthorized: the API server rejected the credentials while trying to %s: %s" % (action, reason)
    if status:
        return "Could not %s: API error %s: %s" % (action, status, reason)
    return "Could not %s: %s" % (action, reason)


def error_reason(err):
    """The API's message in a failed request (ApiRequestError or the client's ApiException)."""
    body = getattr(err, "body", None)
    if body:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        return status_message(body, None) or str(body)[:500]
    return getattr(err, "reason", None) or str(err)


def api_error(err, action, permission="that permission", default=KubehooksError):
    """The exception to raise for a failed request: AuthorizationError on 401/403, else ``default``."""
    status = getattr(err, "status", None) or 0
    cls = AuthorizationError if status in (401, 403) else default
    return cls(api_error_message(status, action, error_reason(err), permission))


def _require_client():
    if KUBERNETES_IMPORT_ERROR is not None:
        raise KubehooksError("the kubernetes Python library is required: %s" % KUBERNETES_IMPORT_ERROR)


def _call(api_client, method, path, query, body, request_timeout, content_type=None, accept=None):
    """One request through ``api_client``; the decoded JSON answer, or ApiRequestError.

    ``body`` is sent as JSON with ``content_type`` (default ``application/json``); ``accept`` is the
    Accept header (default ``application/json``).  An empty answer to a request other than GET is ``{}``.
    """
    headers = {"Accept": accept or "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type or "application/json"
    if isinstance(api_client, RestClient):
        try:
            status, reason, data = api_client.request(method, path, query, headers, body, request_timeout)
        except (Urllib3HTTPError, OSError) as exc:
            raise ApiRequestError(0, str(exc))
        if not 200 <= status <= 299:
            raise ApiRequestError(status, status_message(data, reason), data)
        return _decoded(method, path, data)
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel  # imported by now
    try:
        if hasattr(api_client, "param_serialize"):  # kubernetes >= 35 (new generator)
            request = api_client.param_serialize(method, path, query_params=query, header_params=headers,
                                                 body=body, auth_settings=["BearerToken"])
            response = api_client.call_api(*request, _request_timeout=request_timeout)
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiRequestError(response.status, status_message(data, response.reason), data)
        else:
            response = api_client.call_api(path, method, query_params=query, header_params=headers, body=body,
                                           auth_settings=["BearerToken"], _preload_content=False,
                                           _return_http_data_only=True, _request_timeout=request_timeout)
            data = response.data
    except ApiException as exc:
        body = getattr(exc, "body", None)
        raise ApiRequestError(exc.status or 0, status_message(body, exc.reason or str(exc)), body)
    except (Urllib3HTTPError, OSError) as exc:
        raise ApiRequestError(0, str(exc))
    return _decoded(method, path, data)


def _decoded(method, path, data):
    if not data and method != "GET":
        return {}
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ApiRequestError(0, "the response of %s %s is not JSON: %s" % (method, path, exc))


def api_getter(api_client, request_timeout=None):
    """Return ``get_json(path, query_pairs, accept=None) -> dict`` over ``api_client`` (any kubernetes >= 30.1.0).

    ``request_timeout`` (seconds, or urllib3's ``(connect, read)``) defaults to
    DEFAULT_REQUEST_TIMEOUT: no GET or LIST waits forever on a server that stopped answering.
    """
    _require_client()
    timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout

    def get_json(path, query=None, accept=None):
        return _call(api_client, "GET", path, list(query or []), None, timeout, accept=accept)

    return get_json


def api_requester(api_client, request_timeout=None):
    """Return ``request(method, path, body=None, query=None) -> dict`` over ``api_client`` (POST, PUT,
    DELETE as well as GET), each call bounded by ``request_timeout`` (default DEFAULT_REQUEST_TIMEOUT)."""
    _require_client()
    timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout

    def request(method, path, body=None, query=None):
        return _call(api_client, method, path, list(query or []), body, timeout)

    return request


def access_allowed(api_client, verb, resource, namespace, subresource=None, request_timeout=None):
    """Whether the client's credentials may ``verb`` ``resource[/subresource]`` in ``namespace``.

    Asks the API server with a SelfSubjectAccessReview (every authenticated user may create one);
    ``(allowed, reason)``.  ApiRequestError when the question itself fails.
    """
    _require_client()
    attributes = {"verb": verb, "resource": resource, "namespace": namespace}
    if subresource:
        attributes["subresource"] = subresource
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attributes}}
    answer = _call(api_client, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", [], review,
                   DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout)
    status = answer.get("status") or {}
    return bool(status.get("allowed")), status.get("reason") or status.get("evaluationError") or ""


def list_pages(get_json, path, label_selector=None, page_size=DEFAULT_PAGE_SIZE, warnings=None):
    """Yield the ``items`` of a paginated LIST, page by page (one page in memory at a time).

    A 410 "continue token expired" answer that carries a fresh token is continued with it (the rest
    of the list is then not from the same snapshot; a warning says so), as the API server offers.
    """
    token = None
    while True:
        query = [("limit", int(page_size))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if token:
            query.append(("continue", token))
        try:
            page = get_json(path, query)
        except ApiRequestError as err:
            fresh = None
            if err.status == 410 and token:
                try:
                    fresh = (json.loads(err.body).get("metadata") or {}).get("continue")
                except (ValueError, TypeError, AttributeError):
                    fresh = None
            if not fresh:
                raise
            if warnings is not None:
                warnings.append("the list %s took too long and was continued from a newer snapshot" % path)
            token = fresh
            continue
        items = page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        page = None
        yield from items
        items = None
        if not token:
            return


def pods_path(namespace=None):
    """The LIST path for pods, cluster-wide (``namespace`` None) or in one namespace."""
    if namespace is None:
        return "/api/v1/pods"
    return "/api/v1/namespaces/%s/pods" % quote(namespace, safe="")


def _exec_path_query(namespace, pod, container, argv, stdin):
    path = "/api/v1/namespaces/%s/pods/%s/exec" % (quote(namespace, safe=""), quote(pod, safe=""))
    query = [("command", arg) for arg in argv]
    query += [("container", container), ("stdin", "true" if stdin else "false"), ("stdout", "true"), ("stderr", "true"),
              ("tty", "false")]
    return path, query


def exec_url(host, namespace, pod, container, argv, stdin=False):
    """The websocket URL of ``pods/exec`` for ``argv`` (one ``command`` parameter per argument)."""
    from kubernetes.stream.ws_client import get_websocket_url  # pylint: disable=import-outside-toplevel
    path, query = _exec_path_query(namespace, pod, container, argv, stdin)
    return get_websocket_url(host.rstrip("/") + path, query)


_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")


def exec_sslopt(configuration):
    """The TLS options the kubernetes client's ``create_websocket`` gives websocket-client for an https
    ``configuration``."""
    if configuration.verify_ssl:
        sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": configuration.ssl_ca_cert or _default_ca_file()}
        if configuration.assert_hostname is not None:
            sslopt["check_hostname"] = configuration.assert_hostname
    else:
        sslopt = {"cert_reqs": ssl.CERT_NONE}
    if configuration.cert_file:
        sslopt["certfile"] = configuration.cert_file
    if configuration.key_file:
        sslopt["keyfile"] = configuration.key_file
    if getattr(configuration, "tls_server_name", None):
        sslopt["server_hostname"] = configuration.tls_server_name
    return sslopt


def _default_ca_file():
    import certifi  # the kubernetes client's own default, imported only when the kubeconfig names no CA
    return certifi.where()


def direct_exec_target(configuration):
    """Where ``_exec_socket`` connects for an exec, or None to go through the kubernetes client instead.

    None when a proxy is configured (the client's, or websocket-client's ``http(s)_proxy`` environment),
    for a scheme other than http/https, and when the TLS options are not ones shared_ssl_context mirrors.
    """
    if getattr(configuration, "proxy", None) or getattr(configuration, "proxy_headers", None):
        return None
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    parts = urlsplit(configuration.host or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    secure = parts.scheme == "https"
    context = server_hostname = None
    if secure:
        sslopt = exec_sslopt(configuration)
        context = shared_ssl_context(sslopt)
        if context is None:
            return None
        server_hostname = sslopt.get("server_hostname") or parts.hostname
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return None
    return dict(address=(parts.hostname, port), host_header=parts.netloc.rpartition("@")[2], context=context,
                server_hostname=server_hostname, prefix=parts.path.rstrip("/"))


# The socket timeout of the exec being opened by this thread (see open_exec).
_CONNECT = threading.local()

# One TLS context per distinct TLS setting of the process, shared by every exec websocket (see
# shared_ssl_context).  SSLContext.wrap_socket is thread-safe.
_SSL_CONTEXTS = {}
_SSL_LOCK = threading.Lock()
_SSL_KEYS = ("cert_reqs", "ca_certs", "check_hostname", "certfile", "keyfile")


def shared_ssl_context(sslopt):
    """The TLS context websocket-client would build for ``sslopt``, built once per process and reused.

    websocket-client builds a new ``SSLContext`` for every connection and loads the CA file (the
    whole certifi bundle when the kubeconfig has no CA) and the client certificate into it each
    time: measured 2 ms of CPU per exec with a one-certificate CA file on the local cluster, paid
    twice per pod (pre and post hook).  The context is built as websocket-client 1.x builds it
    (``_http._wrap_sni_socket``).  Returns None - the library then builds its own, and reports
    its own errors - for options this does not mirror, when the environment changes the library's
    behaviour (``WEBSOCKET_CLIENT_CA_BUNDLE``, ``SSLKEYLOGFILE``), or when building fails.
    """
    if sslopt.get("context") is not None or set(sslopt) - set(_SSL_KEYS) - {"server_hostname"}:
        return None
    if os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE") or os.environ.get("SSLKEYLOGFILE"):
        return None
    key = tuple(sslopt.get(name) for name in _SSL_KEYS)
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(key)
        if context is None:
            try:
                context = _build_ssl_context(sslopt)
            except (OSError, ValueError, ssl.SSLError):
                return None
            _SSL_CONTEXTS[key] = context
        return context


def _build_ssl_context(sslopt):
    cert_reqs = sslopt.get("cert_reqs", ssl.CERT_REQUIRED)
    context = _ExecSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.kh_sessions = {}
    if cert_reqs != ssl.CERT_NONE:
        if sslopt.get("ca_certs"):
            context.load_verify_locations(cafile=sslopt["ca_certs"])
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if sslopt.get("certfile"):
        context.load_cert_chain(sslopt["certfile"], sslopt.get("keyfile"))
    if cert_reqs == ssl.CERT_NONE and not sslopt.get("check_hostname", False):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        check_hostname = sslopt.get("check_hostname", True)
        if check_hostname and cert_reqs == ssl.CERT_NONE:
            raise ValueError("check_hostname needs certificate verification")
        context.check_hostname = check_hostname
        context.verify_mode = cert_reqs
    return context


# The first read of an exec's TLS socket asks for this much of the HTTP upgrade answer (see HeaderReadAhead).
_HEADER_CHUNK = 4096
# TLS sessions kept for resumption: one per (server name, peer address); more than this starts afresh.
_SESSION_LIMIT = 32


class HeaderReadAhead(object):
    """Reads an HTTP header in chunks for a caller that asks for it one byte at a time.

    websocket-client reads the answer to the websocket upgrade with one ``recv(1)`` per byte (about
    180 for an exec, twice per pod: that many TLS reads; its own Python calls per byte remain).  ``read(size, buffer,
    raw_read)`` gives the same bytes in the same order, but while the header lasts a short read asks
    ``raw_read`` for up to _HEADER_CHUNK bytes and serves the caller from that.  The header ends with
    the first blank line (websocket-client's rule: a line that is empty once stripped); from then on
    every read goes to ``raw_read`` directly, after what was already read ahead - the frame bytes that
    came in the same TLS record as the header - has been served.  ``pending()`` counts those bytes,
    so a caller that checks ``SSLSocket.pending()`` before polling the socket sees them (TLS returns
    at most one record per read: nothing past that record is taken off the socket).
    ``on_header_end()`` is called once, when the blank line has been read.
    """

    def __init__(self, on_header_end=None):
        self.in_header = True
        self._blank = True  # the header line being read is blank so far
        self._ahead = b""
        self._pos = 0
        self._on_header_end = on_header_end

    def pending(self):
        return len(self._ahead) - self._pos

    def take(self, size):
        """Up to ``size`` bytes of what was read ahead (``b""`` when nothing is, or ``size`` is 0)."""
        ahead, start = self._ahead, self._pos
        end = start + size
        if end >= len(ahead):
            self._ahead, self._pos = b"", 0
            return ahead[start:] if start else ahead
        self._pos = end
        return ahead[start:end]

    def read(self, size, buffer, raw_read):
        """At most ``size`` bytes (``bytes``; or their count, written into ``buffer`` when given)."""
        size = max(size, 0)
        if self._pos >= len(self._ahead):
            if not self.in_header or size >= _HEADER_CHUNK:
                return raw_read(size, buffer) if buffer is not None else raw_read(size)
            data = raw_read(_HEADER_CHUNK)
            if not data:
                return 0 if buffer is not None else data
            self._ahead, self._pos = data, 0
            self._scan(data)
        data = self.take(size)
        if buffer is None:
            return data
        buffer[:len(data)] = data
        return len(data)

    def _scan(self, data):
        """Note the header's end in a chunk just read (the chunk is kept whole: the reader is not ahead)."""
        start = 0
        while self.in_header:
            newline = data.find(b"\n", start)
            if newline < 0:
                self._blank = self._blank and not data[start:].strip()
                return
            if self._blank and not data[start:newline].strip():
                self.in_header = False
                if self._on_header_end is not None:
                    self._on_header_end()
                return
            self._blank = True
            start = newline + 1


class _ExecSSLSocket(ssl.SSLSocket):
    """The TLS socket of an exec websocket (``SSLContext.sslsocket_class`` of _ExecSSLContext).

    Reads the HTTP upgrade answer through a HeaderReadAhead, and once it is read (the server has
    sent its session tickets by then) offers its TLS session to the next connection to the same
    server (_ExecSSLContext.wrap_socket).  ``recv_into`` goes through ``read``; ``recv`` serves
    read-ahead bytes itself (the header's one-byte reads) and otherwise goes through ``read`` too.
    """

    kh_key = None
    _kh_ahead = None

    def read(self, len=1024, buffer=None):  # pylint: disable=redefined-builtin  # ssl.SSLSocket's signature
        ahead = self._kh_ahead
        if ahead is None:
            ahead = self._kh_ahead = HeaderReadAhead(self._kh_remember_session)
        return ahead.read(len, buffer, super(_ExecSSLSocket, self).read)

    def recv(self, buflen=1024, flags=0):
        # websocket-client reads the header with recv(1): served here without SSLSocket's layers.
        ahead = self._kh_ahead
        if ahead is not None and not flags and buflen > 0:
            data = ahead.take(buflen)
            if data:
                return data
        return super(_ExecSSLSocket, self).recv(buflen, flags)

    def pending(self):
        ahead = self._kh_ahead
        return (ahead.pending() if ahead is not None else 0) + super(_ExecSSLSocket, self).pending()

    def _kh_remember_session(self):
        sessions = getattr(self.context, "kh_sessions", None)
        if sessions is None or self.kh_key is None:
            return
        if self.session_reused and sessions.get(self.kh_key) is not None:
            return  # the kept session still works (reading ``session`` copies it: 0.2 ms of CPU)
        try:
            session = self.session
        except (AttributeError, ValueError, ssl.SSLError):  # pragma: no cover - defensive
            return
        if session is not None and session.has_ticket:
            if len(sessions) >= _SESSION_LIMIT and self.kh_key not in sessions:
                sessions.clear()
            sessions[self.kh_key] = session


class _ExecSSLContext(ssl.SSLContext):
    """The shared TLS context of exec websockets: its sockets are _ExecSSLSocket, and a connection
    resumes the TLS session of an earlier one to the same server name and address.

    A resumed session skips the certificate exchange and the server's signature (measured here: a
    connection, handshake and small request in 1.0 ms instead of 1.9 ms; the server's TLS work is
    what two busy cores lack).  The session was made by this context (same CA, same client
    certificate) for the same server name, checked then; a server that no longer accepts it (restarted,
    keys rotated) makes a full handshake instead.
    """

    sslsocket_class = _ExecSSLSocket
    kh_sessions = None

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    server_hostname=None, session=None):
        key = None
        sessions = self.kh_sessions
        if not server_side and sessions is not None:
            try:
                key = (server_hostname, sock.getpeername())
            except (OSError, AttributeError):
                key = None
            if session is None and key is not None:
                session = sessions.get(key)
        wrapped = super(_ExecSSLContext, self).wrap_socket(
            sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs, server_hostname=server_hostname, session=session)
        wrapped.kh_key = key
        return wrapped


if WebSocket is not None:
    class _TimedWebSocket(WebSocket):
        """A WebSocket whose connect takes the timeout of the exec this thread is opening, and whose TLS
        context is shared by every exec of the process (shared_ssl_context).

        The client's ``create_websocket`` connects without a timeout (the TCP connect, the TLS and
        HTTP handshakes and every later read could wait forever).  websocket-client only offers a
        process-wide default for that; this class reads the timeout of ONE exec from a thread-local
        set by ``open_exec`` around that exec's connect, so each exec has its own bound and other
        websockets of the process keep theirs.
        """

        def __init__(self, *args, **kwargs):
            sslopt = kwargs.get("sslopt")
            if sslopt:
                context = shared_ssl_context(sslopt)
                if context is not None:
                    kwargs["sslopt"] = dict(sslopt, context=context)
            super(_TimedWebSocket, self).__init__(*args, **kwargs)

        def connect(self, url, **options):
            timeout = getattr(_CONNECT, "timeout", None)
            if timeout is not None and options.get("timeout") is None:
                options["timeout"] = timeout
            return super(_TimedWebSocket, self).connect(url, **options)
else:  # pragma: no cover - without the client nothing connects
    _TimedWebSocket = None


def _install_timed_websocket():
    """Make the client's ``create_websocket`` build ``_TimedWebSocket`` (idempotent).

    Without a thread-local timeout it behaves exactly as the client's own class.  Returns False
    when this client version does not build its socket through ``ws_client.WebSocket``.
    """
    from kubernetes.stream import ws_client as _ws_client  # pylint: disable=import-outside-toplevel
    current = getattr(_ws_client, "WebSocket", None)
    if current is _TimedWebSocket:
        return True
    if current is WebSocket:
        _ws_client.WebSocket = _TimedWebSocket
        return True
    return False


# The websocket subprotocol of an exec without standard input (hooks, volume capture).  v5 differs
# from v4 only by closing a channel, which ends a standard input; the API server answers a v5 exec
# by translating it into a SPDY connection to the kubelet, whereas a v4 exec is proxied as it is.
# Measured on the local cluster, 400 hook execs at parallelism 8: the API server's and kwok's CPU
# 1.8 s and 1.7 s with v5, 1.0 s and 1.0 s with v4; the execs' wall time 2.3 s -> 1.5 s
# (bench/README.md).  Client versions before 31 offered only v4.
EXEC_PROTOCOL_WITHOUT_STDIN = "v4.channel.k8s.io"

# How long the authorization header of exec websockets is reused (see exec_headers).
_AUTH_REUSE_SECONDS = 10.0
_AUTH_HEADERS = weakref.WeakKeyDictionary()
_AUTH_LOCK = threading.Lock()


def exec_headers(configuration, clock=time.monotonic):
    """The headers ``configuration.auth_settings()`` puts on a request, reused for _AUTH_REUSE_SECONDS.

    ``auth_settings()`` runs the kubeconfig loader's refresh hook, which sets the configuration's
    ``host`` again, and the client's ``host`` setter re-reads the whole proxy environment: most of the
    CPU an exec spends before connecting.  Credentials that expire are renewed by that hook well
    ahead of their expiry (the kubeconfig loader 5 minutes before it, in-cluster tokens every
    minute), so reusing the header for 10 seconds sends no expired credential.  A configuration
    that cannot be weakly referenced is asked every time.
    """
    now = clock()
    try:
        with _AUTH_LOCK:
            cached = _AUTH_HEADERS.get(configuration)
    except TypeError:
        cached = None
    if cached is not None and 0 <= now - cached[0] < _AUTH_REUSE_SECONDS:
        return dict(cached[1])
    headers = auth_headers(configuration)
    try:
        with _AUTH_LOCK:
            _AUTH_HEADERS[configuration] = (now, dict(headers))
    except TypeError:
        pass
    return headers


def open_exec(api_client, namespace, pod, container, argv, timeout=None, stdin=False):
    """Open an exec websocket (binary channels, nothing captured twice); raise ApiRequestError.

    ``stdin``: the command gets a standard input, written with ``write_stdin(bytes)`` (each call one
    websocket frame; a full socket buffer blocks the write, which is the flow control) and closed with
    ``close_channel(0)`` (the v5 protocol, which the client offers first; on v4 only closing the
    socket ends the input).  Without ``stdin`` only v4 is offered (EXEC_PROTOCOL_WITHOUT_STDIN), and the
    websocket is ``_exec_socket``'s (an ``ExecStream``) unless a proxy is configured (direct_exec_target).

    The handshake's HTTP status (403 without ``pods/exec`` get+create, 404 for a deleted pod, 400
    for a missing container) is kept in ``ApiRequestError.status``.  ``timeout`` (seconds) bounds
    this exec's socket: the connect, the handshake and each later read; other execs are unaffected.
    """
    _require_client()
    configuration = api_client.configuration
    headers = exec_headers(configuration)
    if not stdin:
        headers["sec-websocket-protocol"] = EXEC_PROTOCOL_WITHOUT_STDIN
        target = direct_exec_target(configuration)
        if target is not None:
            path, query = _exec_path_query(namespace, pod, container, argv, stdin)
            try:
                sock = _exec_socket.connect(target["address"], target["host_header"],
                                            target["prefix"] + path + "?" + urlencode(query), headers,
                                            timeout=timeout, context=target["context"],
                                            server_hostname=target["server_hostname"])
            except _exec_socket.UpgradeRefused as exc:
                raise ApiRequestError(exc.status, status_message(exc.body, str(exc)), exc.body)
            return _exec_socket.ExecStream(sock)
    from kubernetes.stream.ws_client import WSClient  # pylint: disable=import-outside-toplevel  # see the top
    library_configuration = getattr(configuration, "library_configuration", None)
    if library_configuration is not None:  # a _kubeconfig.Connection
        configuration = library_configuration()
    url = exec_url(configuration.host, namespace, pod, container, argv, stdin=stdin)
    _install_timed_websocket()
    _CONNECT.timeout = timeout
    try:
        return WSClient(configuration, url, headers, False, binary=True)
    except WebSocketBadStatusException as exc:
        body = getattr(exc, "resp_body", None)
        raise ApiRequestError(exc.status_code, status_message(body, str(exc)), body)
    finally:
        _CONNECT.timeout = None


class ThreadClients(object):
    """One ApiClient per worker thread, made by ``factory()`` on first use, all closed by ``close()``.

    ``kubernetes.stream`` swaps an ApiClient's request method while an exec runs, so threads that exec
    at the same time must not share a client.  ``get`` is safe to call from any thread; use it as a
    context manager (``with ThreadClients(factory) as clients: ... clients.get ...``)."""

    def __init__(self, factory):
        self.factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients = []

    def get(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.factory()
            with self._lock:
                self._clients.append(client)
        return client

    def close(self):
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # pylint: disable=broad-except  # closing is best effort
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def api_caller(api_client, request_timeout=None):
    """Return ``call(method, path, body=None, query=None, content_type=None, accept=None) -> dict`` over ``api_client``.

    Any verb: ``body`` (a dict) is sent as JSON with ``content_type`` (default ``application/json``;
    ``application/merge-patch+json`` for a PATCH).  Errors raise ApiRequestError with the HTTP status and
    the ``metav1.Status`` body.  ``request_timeout`` defaults to DEFAULT_REQUEST_TIMEOUT, as for
    :func:`api_getter`.
    """
    _require_client()
    timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout

    def call(method, path, body=None, query=None, content_type=None, accept=None):
        return _call(api_client, method, path, list(query or []), body, timeout, content_type, accept)

    return call
