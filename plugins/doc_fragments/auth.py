# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection and authentication options shared by every kubehooks.backup module."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - When neither this, O(context), nor O(host) with credentials is given, the in-cluster
        service account is tried first, then C(~/.kube/config).
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - Name of a context in the kubeconfig.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://k8s.example.com:6443).
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for HTTP basic authentication (only for clusters configured for it).
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication.
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (the full chain) that signed the API server's certificate.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate used to authenticate with the API.
      - Can also be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Can also be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy for the API connection. The usual E(HTTP_PROXY) variables are not used.
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains or CIDRs that bypass O(proxy).
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers sent to the HTTP proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(username:password) for the proxy's basic authentication.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH) environment variable.
        type: str
      basic_auth:
        description:
          - C(username:password) for a basic authentication header.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) environment variable.
        type: str
      user_agent:
        description:
          - User agent string, such as C(foo/1.0).
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_USER_AGENT) environment variable.
        type: str
  persist_config:
    description:
      - Whether refreshed tokens of the kubeconfig user are written back to the kubeconfig.
      - Can also be set with the E(K8S_AUTH_PERSIST_CONFIG) environment variable.
    type: bool
  impersonate_user:
    description:
      - User name to impersonate (the C(Impersonate-User) header) for every request.
      - Listing and reading (pods, resources to export) impersonate. The exec websocket of the kubernetes
        Python client carries only the C(Authorization) header, so M(kubehooks.backup.pod_hooks) refuses to run
        hooks with O(impersonate_user) or O(impersonate_groups) rather than run them with the credentials'
        own identity.
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate, together with O(impersonate_user). As M(kubernetes.core.k8s), one
        C(Impersonate-Group) header is sent per group (the API server reads a comma-joined value as one group).
      - The same limit as O(impersonate_user) applies to pods/exec.
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable, comma-separated.
    type: list
    elements: str
requirements:
  - kubernetes >= 30.1.0 (the Python client)
notes:
  - The options and their E(K8S_AUTH_*) environment variables are those of M(kubernetes.core.k8s), so
    AWX's C(OpenShift or Kubernetes API Bearer Token) credential (which sets E(K8S_AUTH_HOST),
    E(K8S_AUTH_API_KEY), E(K8S_AUTH_VERIFY_SSL) and E(K8S_AUTH_SSL_CA_CERT)) works unchanged.
  - The modules that contact a cluster (M(kubehooks.backup.pod_hooks_info), M(kubehooks.backup.pod_hooks),
    M(kubehooks.backup.resource_export)) form the action group C(kubehooks.backup.k8s), so these options can be
    set once with C(module_defaults) for C(group/kubehooks.backup.k8s).
"""
