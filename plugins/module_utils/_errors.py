# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: exception classes of kubehooks.backup. Not a public API.

Every exception's ``str()`` is a message meant for the user; modules turn them into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class KubehooksError(Exception):
    """Base class; the message is user-facing."""


class RuleError(KubehooksError):
    """A hook rule is invalid: the whole run stops before anything runs."""


class ScopeError(KubehooksError):
    """included/excluded namespaces or label_selectors are invalid."""


class ExecError(KubehooksError):
    """An exec could not be done or its status was not understood."""


class ExportError(KubehooksError):
    """The resource export failed."""


class AuthorizationError(KubehooksError):
    """The API refused a request; the message names the missing permission."""
