# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which resource types a backup exports: the options resource_export and backup_create share."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  included_resources:
    description:
      - Resource types to export, by plural, singular, kind or short name, optionally with the group
        (V(deployments.apps)); glob patterns allowed. Empty or V(*) means all.
    type: list
    elements: str
    default: []
  excluded_resources:
    description:
      - Resource types left out, same forms as O(included_resources). An exclusion wins.
    type: list
    elements: str
    default: []
  include_cluster_resources:
    description:
      - Velero's C(includeClusterResources). V(false) exports no cluster-scoped resource (not even the
        Namespace objects); V(true) exports the cluster-scoped resources that pass the resource filter;
        unset exports them only when every namespace is in scope (the Namespace objects of the namespaces
        in scope are exported either way).
    type: bool
"""
