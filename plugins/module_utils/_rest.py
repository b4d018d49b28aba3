# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: HTTP requests to the API server over urllib3, without the kubernetes library.
Not a public API.

``RestClient`` stands where an ``ApiClient`` stood for a ``_kubeconfig.Connection``: ``_api`` sends
every GET, LIST, POST, PUT, PATCH and DELETE through ``request``, and opens execs with its
``configuration``.  Its urllib3 pool is built with the arguments the kubernetes client's
``RESTClientObject`` gives urllib3 (certificate checks, CA, client certificate, SNI name, pool size,
urllib3's default retries), so a request succeeds and fails as it did through the library.  One client
per worker thread, as before (``_api.ThreadClients``); a client may also be shared: urllib3's pools are
thread-safe.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import multiprocessing
import ssl
import threading

try:
    from ansible.module_utils.six.moves.urllib.parse import urlencode
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import urlencode

try:
    import urllib3
    from urllib3._collections import HTTPHeaderDict  # urllib3 1.26 and 2.x
    URLLIB3_IMPORT_ERROR = None
except ImportError as exc:  # _kubeconfig is not used then: the library path reports it
    urllib3 = HTTPHeaderDict = None
    URLLIB3_IMPORT_ERROR = exc

USER_AGENT = "kubehooks.backup"


def pool_arguments(configuration):
    """urllib3 PoolManager arguments for ``configuration``, as the kubernetes client's RESTClientObject
    builds them (client 30-37)."""
    arguments = {
        "cert_reqs": ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE,
        "ca_certs": configuration.ssl_ca_cert,
        "cert_file": configuration.cert_file,
        "key_file": configuration.key_file,
        "maxsize": multiprocessing.cpu_count() * 5,
    }
    if configuration.assert_hostname is not None:
        arguments["assert_hostname"] = configuration.assert_hostname
    if configuration.tls_server_name:
        arguments["server_hostname"] = configuration.tls_server_name
    return arguments


def auth_headers(configuration):
    """The headers ``configuration.auth_settings()`` puts on a request (names in lower case); a
    ``_kubeconfig.Connection`` or the library's ``Configuration``."""
    headers = {}
    for setting in (configuration.auth_settings() or {}).values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"].lower()] = setting["value"]
    return headers


def timeout_of(request_timeout):
    """urllib3's Timeout for a number (total) or a ``(connect, read)`` pair, as the client reads them."""
    if not request_timeout:
        return None
    if isinstance(request_timeout, (int, float)):
        return urllib3.Timeout(total=request_timeout)
    connect, read = request_timeout
    return urllib3.Timeout(connect=connect, read=read)


class RestClient(object):
    """Requests to one API server with one connection's credentials, and the extra ``headers`` (a list of
    ``(name, value)``; a name may repeat, e.g. one ``Impersonate-Group`` per group) on every request."""

    def __init__(self, configuration, headers=None):
        self.configuration = configuration
        self.user_agent = USER_AGENT
        self._headers = list(headers or [])
        self._pool = None
        self._lock = threading.Lock()

    def _pool_manager(self):
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = urllib3.PoolManager(**pool_arguments(self.configuration))
                pool = self._pool
        return pool

    def request(self, method, path, query=None, headers=None, body=None, request_timeout=None):
        """``(status, reason, data bytes)`` of one request; urllib3's errors and OSError propagate.

        ``body`` (not None) is sent as JSON; ``headers`` are the caller's (Accept, Content-Type)."""
        url = self.configuration.host + path
        if query:
            url += "?" + urlencode(query)
        sent = HTTPHeaderDict(headers or {})
        sent["User-Agent"] = self.user_agent
        sent.update(auth_headers(self.configuration))
        for name, value in self._headers:
            sent.add(name, value)
        payload = None if body is None else json.dumps(body)
        response = self._pool_manager().request(method, url, body=payload, headers=sent,
                                                timeout=timeout_of(request_timeout), preload_content=True)
        return response.status, response.reason, response.data

    def close(self):
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.clear()
