# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the thin module wrapper every kubehooks.backup module uses. Not a public API.

It merges the shared authentication spec, reports a missing Python library, turns the collection's
exceptions and API errors into ``fail_json`` messages, and applies the optional JMESPath ``query``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubehooks.backup.plugins.module_utils._args import argument_spec, kubeconfig_secrets
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

try:
    import jmespath
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    jmespath = None
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

QUERY_SPEC = dict(query=dict(type="str"))


def apply_query(result, expression):
    """Return ``result`` searched with the JMESPath ``expression``; a bad expression raises."""
    try:
        return jmespath.search(expression, result)
    except jmespath.exceptions.JMESPathError as exc:
        raise KubehooksError("query %r is not a valid JMESPath expression: %s" % (expression, exc))


class SecretAwareModule(AnsibleModule):
    """AnsibleModule that never prints the secrets of a kubeconfig given as a dict.

    Its token and keys join ``no_log_values`` as soon as the parameters are read, before Ansible
    validates them, logs the invocation or fails: every result, ``invocation`` (shown at ``-vvv``,
    kept in AWX's job events) and message then shows ``********`` in their place (kubernetes.core
    does the same, after validation).
    """

    def _load_params(self):
        super(SecretAwareModule, self)._load_params()
        kubeconfig = self.params.get("kubeconfig") if isinstance(self.params, dict) else None
        if isinstance(kubeconfig, dict):
            self.no_log_values.update(kubeconfig_secrets(kubeconfig))


class KubehooksModule(object):
    """Wraps (does not subclass) AnsibleModule; ``module_class`` lets tests inject a stand-in."""

    def __init__(self, spec, needs_client=True, module_class=SecretAwareModule, **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        self.module = module_class(argument_spec=argument_spec(spec) if needs_client else spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        if needs_client:
            from ansible_collections.kubehooks.backup.plugins.module_utils import _client
            if _client.KUBERNETES_IMPORT_ERROR is not None:
                self.module.fail_json(msg=missing_required_lib("kubernetes"),
                                      exception=str(_client.KUBERNETES_IMPORT_ERROR))
        if self.params.get("query") and jmespath is None:
            self.module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)

    def client_factory(self):
        from ansible_collections.kubehooks.backup.plugins.module_utils._client import ClientFactory
        return ClientFactory(self.params)

    def fail(self, msg, **result):
        self.module.fail_json(msg=msg, **result)

    def run(self, execute):
        """Call ``execute(self)`` -> result dict, then exit; errors become clear failures."""
        failed, result = outcome(lambda: execute(self), self.params)
        if failed:
            self.module.fail_json(**result)
        self.module.exit_json(**result)


def outcome(call, params):
    """``(failed, result)`` of ``call()`` -> result dict, with the optional ``query`` applied; the
    collection's errors and unexpected ones become a failed result with ``msg``.  The one place both a
    module run (``KubehooksModule.run``) and a run in the controller's process (``plugin_utils._in_process``)
    turn work into a result."""
    try:
        result = call()
        if params.get("query"):
            result["query_result"] = apply_query(result, params["query"])
    except KubehooksError as exc:
        return True, dict(getattr(exc, "result", {}), msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        # An unexpected failure is a defect: report it clearly, with the traceback for -vvv.
        return True, dict(msg="Unexpected error (please report it): %s: %s" % (type(exc).__name__, exc),
                          exception=traceback.format_exc())
    return bool(result.pop("failed", False)), result
