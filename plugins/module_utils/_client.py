# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: Kubernetes API clients from kubernetes.core-style options. Not a public API.

Resolution order, as kubernetes.core: each option comes from the module parameter, else from
``K8S_AUTH_<OPTION>``, else from ``K8S_AUTH_<CLIENT ATTRIBUTE>``.  Then: a host with a token (or
basic credentials) is used as given; else a kubeconfig or context is loaded; else the in-cluster
service account, then the default kubeconfig.

``ClientFactory`` builds the configuration once and hands out a fresh client per call (one per
exec worker thread): a ``_rest.RestClient`` over a ``_kubeconfig.Connection`` for the configurations
``_kubeconfig`` reads without the kubernetes library, else the library's ``ApiClient`` over its
``Configuration``, loaded as before (``build_configuration``).

Impersonation, as kubernetes.core: ``Impersonate-User``, and ONE ``Impersonate-Group`` header per
group (the API server reads a comma-joined value as a single group name).  The client keeps its
default headers in a plain dict, one value per name, so the groups are added where the request
leaves the client (its urllib3 pool); a RestClient sends them itself.  The exec websocket sends only
the Authorization header: no impersonation there (``_hook_runs`` refuses it before anything runs).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kubehooks.backup.plugins.module_utils._args import (
    AUTH_ARG_MAP,
    AUTH_ARG_SPEC,
    AUTH_PROXY_HEADERS_SPEC,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

from ansible_collections.kubehooks.backup.plugins.module_utils import _kubeconfig, _rest

# Whether the kubernetes library is installed, found without importing it (importing it costs a module
# run 0.16-0.4 s; it is imported only for the configurations _kubeconfig leaves to it).
try:
    from importlib.util import find_spec
    KUBERNETES_IMPORT_ERROR = None if find_spec("kubernetes") else ImportError("No module named 'kubernetes'")
except (ImportError, ValueError) as exc:  # pragma: no cover - a broken installation
    KUBERNETES_IMPORT_ERROR = exc

IMPERSONATE_GROUP = "Impersonate-Group"

FALSE_STRINGS = ("0", "false", "no", "off", "")


def _env_bool(value):
    return value.strip().lower() not in FALSE_STRINGS


def resolve_auth(params, environ=None):
    """Return ``{client attribute: value}`` from module params and ``K8S_AUTH_*`` variables."""
    environ = os.environ if environ is None else environ
    auth = {}
    for attr, option in AUTH_ARG_MAP.items():
        value = params.get(option)
        if value is None and option == "proxy_headers":
            headers = {}
            for key in AUTH_PROXY_HEADERS_SPEC:
                env_value = environ.get("K8S_AUTH_PROXY_HEADERS_" + key.upper())
                if env_value is not None:
                    headers[key] = env_value
            value = headers or None
        elif value is None:
            value = environ.get("K8S_AUTH_" + option.upper()) or environ.get("K8S_AUTH_" + attr.upper())
            if value is not None:
                kind = AUTH_ARG_SPEC[option].get("type")
                if kind == "bool":
                    value = _env_bool(value)
                elif kind == "list":
                    value = [item.strip() for item in value.split(",") if item.strip()]
        if value is not None:
            auth[attr] = value
    return auth


def _library():
    import kubernetes  # pylint: disable=import-outside-toplevel  # see KUBERNETES_IMPORT_ERROR
    return kubernetes


def _load_kubeconfig(auth, configuration):
    kubernetes = _library()
    kubeconfig = auth.get("kubeconfig")
    kwargs = dict(context=auth.get("context"), client_configuration=configuration,
                  persist_config=bool(auth.get("persist_config")))
    if isinstance(kubeconfig, dict):
        kubernetes.config.load_kube_config_from_dict(config_dict=kubeconfig, **kwargs)
    else:
        kubernetes.config.load_kube_config(config_file=kubeconfig or None, **kwargs)


def build_configuration(auth):
    """Return a ``kubernetes.client.Configuration`` for the resolved ``auth`` options."""
    kubernetes = _library()
    configuration = kubernetes.client.Configuration()
    if auth.get("host"):
        auth["host"] = auth["host"].rstrip("/")
    try:
        if _kubeconfig.has_credentials(auth):
            pass
        elif auth.get("kubeconfig") or auth.get("context"):
            _load_kubeconfig(auth, configuration)
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            except kubernetes.config.ConfigException:
                _load_kubeconfig(auth, configuration)
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise KubehooksError("Could not load the Kubernetes configuration: %s" % exc)

    for attr, value in auth.items():
        if attr in _kubeconfig.NOT_ATTRIBUTES:
            continue
        if attr == "api_key":
            configuration.api_key = {"authorization": "Bearer " + value}
        elif attr == "proxy_headers":
            import urllib3
            configuration.proxy_headers = urllib3.util.make_headers(**value)
        else:
            setattr(configuration, attr, value)
    _check_host(configuration)
    return configuration


def _check_host(configuration):
    if configuration.host in (None, "", "http://localhost"):
        raise KubehooksError(
            "No Kubernetes API server is configured: set host (K8S_AUTH_HOST), kubeconfig "
            "(K8S_AUTH_KUBECONFIG) or run inside a cluster.")


class ClientFactory(object):
    """Build the configuration once; each call returns a new, independent client: a ``_rest.RestClient``
    when ``_kubeconfig`` reads the configuration (``configuration`` is then a ``_kubeconfig.Connection``),
    else the library's ``ApiClient``."""

    def __init__(self, params, environ=None):
        auth = resolve_auth(params, environ)
        self.impersonate_user = auth.get("impersonate_user")
        self.impersonate_groups = list(auth.get("impersonate_groups") or [])
        if self.impersonate_groups and not self.impersonate_user:
            # The API server answers such a request with an error that does not say why.
            raise KubehooksError("impersonate_groups needs impersonate_user (the API server impersonates "
                                 "groups only together with a user)")
        connection = _kubeconfig.load(auth) if _rest.URLLIB3_IMPORT_ERROR is None else None
        if connection is not None:
            _check_host(connection)
            self.configuration = connection
        else:
            self.configuration = build_configuration(auth)

    @property
    def host(self):
        return self.configuration.host

    def __call__(self):
        if isinstance(self.configuration, _kubeconfig.Connection):
            headers = [("Impersonate-User", self.impersonate_user)] if self.impersonate_user else []
            headers += [(IMPERSONATE_GROUP, group) for group in self.impersonate_groups]
            return _rest.RestClient(self.configuration, headers)
        kubernetes = _library()
        client = kubernetes.client.ApiClient(self.configuration)
        client.user_agent = "kubehooks.backup"
        if self.impersonate_user:
            client.set_default_header("Impersonate-User", self.impersonate_user)
        if self.impersonate_groups:
            send_groups(client, self.impersonate_groups)
        return client


def send_groups(client, groups):
    """Make every request of ``client`` carry one ``Impersonate-Group`` header per group."""
    from urllib3._collections import HTTPHeaderDict  # pylint: disable=import-outside-toplevel  # 1.26 and 2.x
    pool = client.rest_client.pool_manager
    request = pool.request

    def request_with_groups(method, url, *args, **kwargs):
        headers = HTTPHeaderDict(kwargs.get("headers") or {})
        headers.discard(IMPERSONATE_GROUP)
        for group in groups:
            headers.add(IMPERSONATE_GROUP, group)
        kwargs["headers"] = headers
        return request(method, url, *args, **kwargs)

    pool.request = request_with_groups
    return client
