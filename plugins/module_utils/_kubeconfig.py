# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the API connection read without the kubernetes library. Not a public API.

Importing the kubernetes Python client costs a module run 0.16-0.2 s (0.4 s with client 30.1): its
package imports its kubeconfig loader, which imports requests, oauthlib, pydantic and more, on every
run, to read a few fields of a YAML file.  ``load`` reads the common configurations itself, with the
library's own rules (``kubernetes.config.kube_config`` / ``incluster_config``), into a ``Connection``:
- a host with a token, basic credentials or a client certificate given as options;
- a kubeconfig (a path, ``KUBECONFIG`` naming one file, ``~/.kube/config``, or a dict) whose user has a
  token, a ``tokenFile``, a client certificate and key, or a username and password, and whose cluster
  has a server, a CA (file or data), ``insecure-skip-tls-verify`` and ``tls-server-name``;
- the in-cluster service account (its token re-read every minute, as the library does).
Anything else returns None, and the caller uses the kubernetes library exactly as before: exec
credential plugins, auth providers, proxies (``proxy``, ``proxy-url``, the proxy environment variables),
``persist_config``, several files in ``KUBECONFIG``, and every configuration the library would reject
(the library's error message is then the one reported).  The unit tests load the same configurations
through both and compare the result (tests/unit/plugins/module_utils/test__kubeconfig.py).

An https server without a CA is left to the library too: its REST client then trusts certifi's bundle
(client 30.x) or the system's (35+).

One deliberate difference: options win over what the kubeconfig or the service account gives, as
kubernetes.core documents.  With the library, once a kubeconfig's user (or the service account) gave a
token, its refresh hook set that token and the kubeconfig's host, CA and client certificate on the
configuration again before every request: an ``api_key`` or ``host`` option given with such a kubeconfig
lost to it, and so did ``ca_cert`` and ``client_cert`` for every client after the first.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import atexit
import base64
import binascii
import os
import shutil
import tempfile
import threading
import time

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

try:
    import yaml
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # the library path is taken, which reports it
    yaml = None
    YAML_IMPORT_ERROR = exc

# The library's in-cluster constants (kubernetes.config.incluster_config).
SERVICE_HOST_ENV_NAME = "KUBERNETES_SERVICE_HOST"
SERVICE_PORT_ENV_NAME = "KUBERNETES_SERVICE_PORT"
SERVICE_TOKEN_FILENAME = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_CERT_FILENAME = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
TOKEN_REFRESH_SECONDS = 60.0

# The library reads a proxy from these (client 35+); a configuration with one is left to it.
PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")

# Options of the resolved auth that are not attributes of the connection (nor of the library's Configuration).
NOT_ATTRIBUTES = ("kubeconfig", "context", "persist_config", "impersonate_user", "impersonate_groups")


def has_credentials(auth):
    """A host with a token, basic credentials or a client certificate: no kubeconfig is read then."""
    return bool(auth.get("host") and (
        auth.get("api_key") or (auth.get("username") and auth.get("password"))
        or (auth.get("cert_file") and auth.get("key_file"))))


class Connection(object):
    """Where and how to reach the API server; attributes named as ``kubernetes.client.Configuration``'s,
    so the exec path (``_api.exec_sslopt``, ``exec_headers``) and the watchdog read either."""

    def __init__(self):
        self.host = "http://localhost"
        self.verify_ssl = True
        self.ssl_ca_cert = None
        self.cert_file = None
        self.key_file = None
        self.assert_hostname = None
        self.tls_server_name = None
        self.proxy = None
        self.no_proxy = None
        self.proxy_headers = None
        self.username = None
        self.password = None
        self.api_key = {}
        self._token_file = None  # in-cluster: re-read every TOKEN_REFRESH_SECONDS
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self._library_lock = threading.Lock()  # not the token's: building calls auth_settings()
        self._library = None

    def _refresh(self):
        if self._token_file is None or time.monotonic() < self._token_expires:
            return
        with self._token_lock:
            if time.monotonic() >= self._token_expires:
                try:
                    token = _read_service_token(self._token_file)
                except (_Unsupported, OSError, ValueError) as exc:
                    raise KubehooksError("Could not read the service account token %s again: %s"
                                         % (self._token_file, str(exc) or "the file is empty"))
                self.api_key["authorization"] = "bearer " + token
                self._token_expires = time.monotonic() + TOKEN_REFRESH_SECONDS

    def auth_settings(self):
        """The Authorization header, in the shape of ``Configuration.auth_settings()``."""
        self._refresh()
        value = self.api_key.get("authorization")
        if not value:
            return {}
        return {"BearerToken": {"type": "api_key", "in": "header", "key": "authorization", "value": value}}

    def library_configuration(self):
        """The same connection as a ``kubernetes.client.Configuration`` (the stdin exec path still uses the
        library's websocket client); built once, on first use."""
        with self._library_lock:
            if self._library is None:
                import kubernetes.client  # pylint: disable=import-outside-toplevel  # only for this path
                configuration = kubernetes.client.Configuration()
                for name in ("host", "verify_ssl", "ssl_ca_cert", "cert_file", "key_file", "assert_hostname",
                             "tls_server_name", "no_proxy", "username", "password"):
                    setattr(configuration, name, getattr(self, name))
                connection = self

                def refresh(target):
                    settings = connection.auth_settings()
                    target.api_key = {"authorization": settings["BearerToken"]["value"]} if settings else {}
                configuration.refresh_api_key_hook = refresh
                refresh(configuration)
                self._library = configuration
            return self._library


class _Unsupported(Exception):
    """This configuration is left to the kubernetes library."""


def load(auth, environ=None):
    """A Connection for the resolved ``auth`` options (see ``_client.resolve_auth``), or None when the
    kubernetes library must read this configuration.  Same order as ``_client.build_configuration``."""
    environ = os.environ if environ is None else environ
    if yaml is None or any(environ.get(name) for name in PROXY_VARIABLES):
        return None
    if auth.get("proxy") or auth.get("proxy_headers") or auth.get("persist_config"):
        return None
    connection = Connection()
    try:
        if has_credentials(auth):
            pass
        elif auth.get("kubeconfig") or auth.get("context"):
            _load_kubeconfig(connection, auth.get("kubeconfig"), auth.get("context"), environ)
        elif not _load_incluster(connection, environ):
            _load_kubeconfig(connection, None, None, environ)
    except _Unsupported:
        return None
    for attr, value in auth.items():
        if attr in NOT_ATTRIBUTES:
            continue
        if attr == "api_key":
            connection.api_key = {"authorization": "Bearer " + value}
            connection._token_file = None  # pylint: disable=protected-access  # the option's token, always
        elif attr == "host":
            connection.host = value.rstrip("/")
        else:
            setattr(connection, attr, value)
    if connection.verify_ssl and not connection.ssl_ca_cert and str(connection.host).startswith("https"):
        # No CA: the library's REST client trusts certifi's bundle (30.x) or the system's (35+); left to it.
        return None
    return connection


def _load_incluster(connection, environ):
    """The service account of the pod this runs in, as ``InClusterConfigLoader``; False when not in one."""
    host, port = environ.get(SERVICE_HOST_ENV_NAME), environ.get(SERVICE_PORT_ENV_NAME)
    if not host or not port:
        return False
    if not os.path.isfile(SERVICE_TOKEN_FILENAME):
        return False
    try:
        token = _read_service_token(SERVICE_TOKEN_FILENAME)
        if not os.path.isfile(SERVICE_CERT_FILENAME):
            return False
        with open(SERVICE_CERT_FILENAME) as handle:
            if not handle.read():
                return False
    except _Unsupported:
        return False
    except (OSError, ValueError):
        raise _Unsupported()  # the library reports it
    template = "https://[%s]:%s" if (":" in host or "%" in host) else "https://%s:%s"
    connection.host = template % (host, port)
    connection.ssl_ca_cert = SERVICE_CERT_FILENAME
    connection.api_key = {"authorization": "bearer " + token}
    connection._token_file = SERVICE_TOKEN_FILENAME  # pylint: disable=protected-access
    connection._token_expires = time.monotonic() + TOKEN_REFRESH_SECONDS  # pylint: disable=protected-access
    return True


def _read_service_token(path):
    with open(path) as handle:
        content = handle.read()
    if not content:
        raise _Unsupported()
    return content


def _named(entries, name):
    """The entry called ``name`` of a kubeconfig list (clusters, users, contexts)."""
    if not isinstance(entries, list):
        raise _Unsupported()
    found = None
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry:
            raise _Unsupported()
        if entry["name"] == name:
            if found is not None:
                raise _Unsupported()  # the library refuses a name given twice
            found = entry
    return found


def _load_kubeconfig(connection, kubeconfig, context, environ):
    if isinstance(kubeconfig, dict):
        config, base = kubeconfig, ""
    else:
        path = kubeconfig or environ.get("KUBECONFIG", "~/.kube/config")
        if not isinstance(path, str) or os.pathsep in path:
            raise _Unsupported()  # several files are merged by the library
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise _Unsupported()
        try:
            with open(path) as handle:
                config = yaml.safe_load(handle)
        except (OSError, ValueError, yaml.YAMLError):
            raise _Unsupported()
        base = os.path.abspath(os.path.dirname(path))
    if not isinstance(config, dict):
        raise _Unsupported()
    name = context if context is not None else config.get("current-context")
    entry = _named(config.get("contexts"), name)
    if entry is None or not isinstance(entry.get("context"), dict):
        raise _Unsupported()
    ctx = entry["context"]
    user = None
    if ctx.get("user") and config.get("users"):
        user_entry = _named(config["users"], ctx["user"])
        if user_entry is not None:
            user = user_entry.get("user")
            if not isinstance(user, dict):
                raise _Unsupported()
    cluster_entry = _named(config.get("clusters"), ctx.get("cluster"))
    if cluster_entry is None or not isinstance(cluster_entry.get("cluster"), dict):
        raise _Unsupported()
    cluster = cluster_entry["cluster"]
    if user and ("auth-provider" in user or "exec" in user):
        raise _Unsupported()
    if "proxy-url" in cluster:
        raise _Unsupported()
    _load_user(connection, user, base)
    if "server" in cluster:
        connection.host = _get(cluster, "server", str).rstrip("/")
        if connection.host.startswith("https"):
            connection.ssl_ca_cert = _as_file(cluster, "certificate-authority", base)
            connection.cert_file = _as_file(user, "client-certificate", base)
            connection.key_file = _as_file(user, "client-key", base)
    if "insecure-skip-tls-verify" in cluster:
        connection.verify_ssl = not _get(cluster, "insecure-skip-tls-verify", bool)
    if "tls-server-name" in cluster:
        connection.tls_server_name = _get(cluster, "tls-server-name", str)


def _get(node, key, kind):
    """``node[key]`` when it is a ``kind``; anything else (null included, which the library refuses) is
    left to the library."""
    value = node[key]
    if not isinstance(value, kind):
        raise _Unsupported()
    return value


def _load_user(connection, user, base):
    """The library's order: a token (``token``, else ``tokenFile``), else username and password."""
    if not user:
        return
    if "token" in user:
        token = _get(user, "token", str)
    elif "tokenFile" in user:
        path = os.path.normpath(os.path.join(base, _get(user, "tokenFile", str)))
        try:
            with open(path) as handle:
                token = handle.read()
        except (OSError, ValueError):
            raise _Unsupported()
    else:
        token = None
    if token:
        connection.api_key = {"authorization": "Bearer %s" % token}
    elif "username" in user and "password" in user:
        import urllib3  # pylint: disable=import-outside-toplevel  # as the library builds the header
        credentials = _get(user, "username", str) + ":" + _get(user, "password", str)
        try:
            credentials.encode("latin-1")  # what urllib3 encodes the header with
        except UnicodeError:
            raise _Unsupported()
        connection.api_key = {"authorization": urllib3.util.make_headers(basic_auth=credentials)["authorization"]}


def _as_file(node, key, base):
    """``FileOrData(node, key).as_file()``: ``<key>-data`` (base64) written to a private file, else the
    path ``<key>`` relative to the kubeconfig's directory, which must exist."""
    if not node:
        return None
    data_key = key + "-data"
    if data_key in node:
        data = _get(node, data_key, str)
        if not data:
            return None
        try:
            content = base64.standard_b64decode(data.encode())
        except (binascii.Error, TypeError, ValueError):
            raise _Unsupported()
        return _private_file(content)
    if key in node:
        path = os.path.normpath(os.path.join(base, _get(node, key, str)))
        if not os.path.isfile(path):
            raise _Unsupported()
        return path
    return None


_FILES = {"dir": None, "pid": None, "by_content": {}}
_FILES_LOCK = threading.Lock()


def _private_file(content):
    """A file holding ``content`` in a directory of this process (0700, files 0600), removed at exit."""
    with _FILES_LOCK:
        if _FILES["dir"] is None or _FILES["pid"] != os.getpid():
            _FILES["dir"] = tempfile.mkdtemp(prefix="kubehooks-kubeconfig-")
            _FILES["pid"] = os.getpid()
            _FILES["by_content"] = {}
            atexit.register(_remove_files, _FILES["dir"], os.getpid())
        path = _FILES["by_content"].get(content)
        if path is None:
            path = os.path.join(_FILES["dir"], "%d" % len(_FILES["by_content"]))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            _FILES["by_content"][content] = path
        return path


def _remove_files(directory, pid):
    # A forked child (the watchdog) inherits the handler: only the process that made the files removes them.
    if os.getpid() == pid:
        shutil.rmtree(directory, ignore_errors=True)


def remove_private_files():
    """Remove the private files this process wrote now, for a process that leaves without running its atexit
    handlers (a task worker of the controller, ``plugin_utils._in_process``, leaves with ``os._exit``)."""
    with _FILES_LOCK:
        if _FILES["dir"] is not None and _FILES["pid"] == os.getpid():
            _remove_files(_FILES["dir"], _FILES["pid"])
            _FILES["dir"] = None
            _FILES["by_content"] = {}
