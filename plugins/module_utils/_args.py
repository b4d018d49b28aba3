# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: argument specs shared by the modules, and the one check of a count. Not a public API.

The authentication options, their aliases and their ``K8S_AUTH_*`` environment variables are the
ones kubernetes.core uses, so that ``module_defaults`` written for kubernetes.core and AWX's
Kubernetes credential work unchanged.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

AUTH_PROXY_HEADERS_SPEC = dict(
    proxy_basic_auth=dict(type="str", no_log=True),
    basic_auth=dict(type="str", no_log=True),
    user_agent=dict(type="str"),
)

AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    proxy=dict(type="str"),
    no_proxy=dict(type="str"),
    proxy_headers=dict(type="dict", options=AUTH_PROXY_HEADERS_SPEC),
    persist_config=dict(type="bool"),
    impersonate_user=dict(type="str"),
    impersonate_groups=dict(type="list", elements="str"),
)

# kubernetes client Configuration attribute -> module option; the environment variable is
# K8S_AUTH_<OPTION> first, then K8S_AUTH_<ATTRIBUTE> (kubernetes.core's order), so
# K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT (set by AWX's credential) are honoured.
AUTH_ARG_MAP = dict(
    kubeconfig="kubeconfig",
    context="context",
    host="host",
    api_key="api_key",
    username="username",
    password="password",
    verify_ssl="validate_certs",
    ssl_ca_cert="ca_cert",
    cert_file="client_cert",
    key_file="client_key",
    proxy="proxy",
    no_proxy="no_proxy",
    proxy_headers="proxy_headers",
    persist_config="persist_config",
    impersonate_user="impersonate_user",
    impersonate_groups="impersonate_groups",
)

# Which namespaces and labels are in scope: the pods whose hooks run, and what a backup covers.
_NAMESPACE_LABEL_SCOPE = dict(
    included_namespaces=dict(type="list", elements="str", default=[]),
    excluded_namespaces=dict(type="list", elements="str", default=[]),
    label_selectors=dict(type="list", elements="str", default=[]),
)

SCOPE_ARG_SPEC = dict(
    _NAMESPACE_LABEL_SCOPE,
    hooks=dict(type="list", elements="dict", default=[]),
    max_hook_timeout=dict(type="str"),
)

# What a backup covers (Velero's Backup spec fields): resource_export reads it, backup_record records it.
BACKUP_SCOPE_ARG_SPEC = dict(
    _NAMESPACE_LABEL_SCOPE,
    included_resources=dict(type="list", elements="str", default=[]),
    excluded_resources=dict(type="list", elements="str", default=[]),
    include_cluster_resources=dict(type="bool"),
)

# Where a backup's files are: one backup directory, or the storage layout's parts.
# The critical section's options (freeze, capture, thaw): backup_capture and backup_create (doc fragment
# critical_section). The two defaults are _critical's DEFAULT_MAX_FREEZE_SECONDS and DEFAULT_THAW_RETRY_SECONDS.
SECTION_ARG_SPEC = dict(
    freeze_together=dict(type="bool", default=False),
    default_volumes_to_fs_backup=dict(type="bool", default=False),
    snapshot_volumes=dict(type="bool", default=True),
    csi_snapshot_timeout=dict(type="float", default=600),
    check_storage_room=dict(type="bool", default=True),
    lease=dict(type="bool", default=True),
    lease_namespace=dict(type="str", default="default"),
    lease_name=dict(type="str", default="kubehooks-backup-freeze"),
    lease_wait_seconds=dict(type="float", default=300),
    max_freeze_seconds=dict(type="float", default=600),
    thaw_retry_seconds=dict(type="float", default=300),
    parallelism=dict(type="int", default=8),
    output_limit=dict(type="int", default=65536),
)

BACKUP_LOCATION_ARG_SPEC = dict(
    name=dict(type="str", required=True),
    backup_dir=dict(type="path"),
    storage_dir=dict(type="path"),
    cluster=dict(type="str"),
)


# Keys of a kubeconfig whose string values are secrets (as kubernetes.core redacts them), plus the
# OIDC auth-provider's.  A kubeconfig given as a dict is otherwise an ordinary ``raw`` option.
KUBECONFIG_SECRET_KEYS = frozenset((
    "token", "password", "secret", "client-key-data", "client-certificate-data", "certificate-authority-data",
    "api_key", "access-token", "refresh-token", "id-token", "client-secret",
))


def kubeconfig_secrets(kubeconfig):
    """The secret strings of a kubeconfig given as a dict, for the module's ``no_log_values``.

    Ansible then replaces them with ``********`` wherever they would appear in the result, its
    ``invocation`` (shown at ``-vvv``, stored in AWX's job events) and its messages.
    """
    found = set()
    stack = [kubeconfig]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in KUBECONFIG_SECRET_KEYS and isinstance(value, str) and value:
                    found.add(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def argument_spec(*specs):
    """Return a deep copy of the authentication spec merged with ``specs``."""
    merged = copy.deepcopy(AUTH_ARG_SPEC)
    for spec in specs:
        merged.update(copy.deepcopy(spec))
    return merged


def require_count(key, value, what="a whole number of at least 1"):
    """``value`` when it is a whole number of at least 1, else KubehooksError naming ``key``.

    A bool is refused: Ansible's ``int`` type lets ``true`` through as True, which would count as 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KubehooksError("%s must be %s, got %r" % (key, what, value))
    return value
