# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: exception classes of kubehooks.backup. Not a public API.

Every exception's ``str()`` is a message meant for the user; modules turn them into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json


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


class FieldError(ValueError):
    """A ValueError naming the offending key and value (turned into a RuleError or ScopeError)."""

    def __init__(self, key, value, problem):
        ValueError.__init__(self, "%s: %s" % (key, problem))
        self.key = key
        self.value = value
        self.problem = problem


# A value shown in a message is cut after this many characters (a hostile value may be megabytes).
SHOWN_VALUE_MAX = 300


def show_value(value):
    """Render a value for a message, as JSON where possible (strings in double quotes).

    A value too deeply nested to render is described, not rendered; a long one is cut after
    SHOWN_VALUE_MAX characters, with ``...`` and its full length.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except RecursionError:
        return "<a %s nested too deeply to show>" % type(value).__name__
    except (TypeError, ValueError):
        try:
            text = repr(value)
        except RecursionError:
            return "<a %s nested too deeply to show>" % type(value).__name__
    if len(text) > SHOWN_VALUE_MAX:
        return "%s... (%d characters)" % (text[:SHOWN_VALUE_MAX], len(text))
    return text


def reject_unknown_keys(mapping, allowed, where=""):
    """FieldError naming the first key of ``mapping`` that is not ``allowed``."""
    unknown = sorted((k for k in mapping if k not in allowed), key=str)
    if unknown:
        key = "%s.%s" % (where, unknown[0]) if where else str(unknown[0])
        raise FieldError(key, mapping[unknown[0]], "unknown key (allowed: %s)" % ", ".join(allowed))


def string_list(value, key):
    """``value`` as a list (None is empty); FieldError when it is not a list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(key, value, "must be a list of strings")
    return value
