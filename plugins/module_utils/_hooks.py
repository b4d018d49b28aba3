# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: pure backup hook resolution. Not a public API; it may change at any time.

Turns pod objects (plain dicts in the API's JSON shape) and hook rules (Velero's
``Backup.spec.hooks.resources`` items) into the plan that ``pod_hooks_info`` returns and
``pod_hooks`` runs.  No I/O and no third-party imports: everything here is deterministic and is
the one place for hook defaults and validation.

The contract is ``hook-semantics.md`` (sections 1, 2, 4 and 8).  Where Velero silently falls back
to a default (bad JSON command, bad on-error, bad timeout), this module reports a validation error.

Decisions where the contract is silent (also in the functions' docstrings):

* An annotation hook that is invalid still takes precedence over the rules for its phase: the phase
  then holds that one invalid hook (an error entry), never the rules' hooks in its place.
* A ``container``, ``on-error`` or ``timeout`` annotation that is present but empty is invalid
  (only an empty ``command`` means "no hook", as in Velero).  In rules, ``null`` means unset.
* The first element of a command (the program) must not be empty.
* Namespace patterns are checked as Velero checks backup namespaces (``wildcard.ValidateNamespaceName``
  plus the namespace-name check with ``*?[]`` replaced), then as gobwas/glob compiles them:
  ``[x-y]`` is exactly one range with x <= y, any other ``[...]`` is a list of characters.
  An empty pattern is invalid too (it can only match cluster-scoped items, never a pod).
* ``*`` in ``excludedResources`` is a rule error (Velero silently ignores it).
* Empty strings in ``label_selectors`` are ignored (an empty selector selects everything); the
  selector syntax is apimachinery's ``labels.Parse``, including ``>``/``<`` and ``a=`` (empty value).
* In rules, ``timeout`` may also be a number (seconds), like a bare number in the annotation.
* Annotation keys under ``hook.backup.velero.io/`` other than the four known ones are ignored (Velero
  ignores them too).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import math
import re
from collections import namedtuple
from fractions import Fraction

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import RuleError, ScopeError

# --------------------------------------------------------------------------------------------
# Constants: the one place for names and defaults
# --------------------------------------------------------------------------------------------

PHASES = ("pre", "post")
ANNOTATION_DOMAIN = "hook.backup.velero.io/"
FROM_ANNOTATION = "<from-annotation>"
SOURCE_ANNOTATION = "annotation"
SOURCE_SPEC = "spec"
ON_ERROR_FAIL = "Fail"
ON_ERROR_CONTINUE = "Continue"
ON_ERROR_VALUES = (ON_ERROR_FAIL, ON_ERROR_CONTINUE)
DEFAULT_ON_ERROR = ON_ERROR_FAIL  # Velero's documented default (its code uses Continue)
DEFAULT_TIMEOUT = 30  # seconds

RULE_KEYS = ("name", "includedNamespaces", "excludedNamespaces", "includedResources",
             "excludedResources", "labelSelector", "pre", "post")
RULE_HOOK_KEYS = ("exec",)
EXEC_KEYS = ("container", "command", "onError", "timeout")
SELECTOR_KEYS = ("matchLabels", "matchExpressions")
EXPRESSION_KEYS = ("key", "operator", "values")
EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
POD_RESOURCE_NAMES = ("pods", "pod", "po")


def annotation_key(phase, field):
    """Annotation name of ``field`` for ``phase`` (``pre``/``post``), or the legacy key for phase ``None``."""
    return (phase + "." if phase else "") + ANNOTATION_DOMAIN + field


def _show(value):
    """Render a value for a message, as JSON where possible (strings in double quotes)."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _FieldError(ValueError):
    """A ValueError naming the offending key and value (turned into a RuleError or ScopeError)."""

    def __init__(self, key, value, problem):
        ValueError.__init__(self, "%s: %s" % (key, problem))
        self.key = key
        self.value = value
        self.problem = problem


def _reject_unknown_keys(mapping, allowed, where=""):
    unknown = sorted((k for k in mapping if k not in allowed), key=str)
    if unknown:
        key = "%s.%s" % (where, unknown[0]) if where else str(unknown[0])
        raise _FieldError(key, mapping[unknown[0]], "unknown key (allowed: %s)" % ", ".join(allowed))


# --------------------------------------------------------------------------------------------
# Durations (Go's time.ParseDuration / Duration.String)
# --------------------------------------------------------------------------------------------

_NS_PER_SECOND = 10 ** 9
_MAX_DURATION_NS = 2 ** 63 - 1
_UNIT_NS = {
    "ns": 1,
    "us": 10 ** 3,
    u"\u00b5s": 10 ** 3,  # micro sign
    u"\u03bcs": 10 ** 3,  # Greek mu
    "ms": 10 ** 6,
    "s": _NS_PER_SECOND,
    "m": 60 * _NS_PER_SECOND,
    "h": 3600 * _NS_PER_SECOND,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_BARE_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_DURATION_HINT = "use a Go duration such as 500ms, 30s, 1m30s or 2h, or a number of seconds"


def _number_ns(text, unit_ns):
    """Nanoseconds of a decimal ``text`` (digits and at most one dot) times ``unit_ns``, truncated as Go does."""
    return int(Fraction(text) * unit_ns)


def _go_duration_ns(text):
    """Parse an unsigned Go duration (at least one ``<number><unit>`` part) into nanoseconds."""
    total = 0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        number, unit = match.group(1), match.group(2)
        if number in ("", "."):
            raise ValueError("a number is expected at %s" % _show(text[pos:]))
        if not unit:
            raise ValueError("missing unit after %s" % number)
        if unit not in _UNIT_NS:
            raise ValueError("unknown unit %s (valid units: ns, us, \u00b5s, ms, s, m, h)" % _show(unit))
        total += _number_ns(number, _UNIT_NS[unit])
        pos = match.end()
    return total


def parse_duration(value):
    """Parse a hook timeout into seconds (an int when whole, else a float).

    Accepts a Go duration string (``500ms``, ``30s``, ``1m30s``, ``1.5h``; units ns, us or the micro
    sign, ms, s, m, h), a bare number as a string (seconds: ``"300"``, ``"1.5"``) or a number (seconds).
    Raises ValueError for anything empty, zero, negative, with surrounding whitespace, or unparseable.
    """
    if _is_number(value):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("invalid duration %s: not a finite number" % _show(value))
        if value <= 0:
            raise ValueError("invalid duration %s: it must be greater than zero" % _show(value))
        return value
    if not isinstance(value, str):
        raise ValueError("invalid duration %s: expected a string or a number; %s" % (_show(value), _DURATION_HINT))
    if value == "":
        raise ValueError("invalid duration \"\": it is empty; %s" % _DURATION_HINT)
    if value != value.strip():
        raise ValueError("invalid duration %s: surrounding whitespace is not allowed" % _show(value))
    if value[0] == "-":
        raise ValueError("invalid duration %s: it must not be negative" % _show(value))
    text = value[1:] if value[0] == "+" else value
    try:
        if _BARE_NUMBER.match(text):
            nanoseconds = _number_ns(text, _NS_PER_SECOND)
        elif text == "":
            raise ValueError("it is empty")
        else:
            nanoseconds = _go_duration_ns(text)
    except ValueError as exc:
        raise ValueError("invalid duration %s: %s; %s" % (_show(value), exc, _DURATION_HINT))
    if nanoseconds > _MAX_DURATION_NS:
        raise ValueError("invalid duration %s: it is too long (Go durations end at about 292 years)" % _show(value))
    if nanoseconds <= 0:
        raise ValueError("invalid duration %s: it must be greater than zero" % _show(value))
    return _seconds(nanoseconds)


def _seconds(nanoseconds):
    if nanoseconds % _NS_PER_SECOND == 0:
        return nanoseconds // _NS_PER_SECOND
    return nanoseconds / _NS_PER_SECOND


def _to_nanoseconds(seconds):
    if isinstance(seconds, int):
        return seconds * _NS_PER_SECOND
    return int(round(Fraction(repr(float(seconds))) * _NS_PER_SECOND))


def _fmt_frac(value, prec):
    """Go's fmtFrac: (".ddd" without trailing zeros or "", value // 10**prec)."""
    digits = ("%0*d" % (prec, value % 10 ** prec)).rstrip("0") if prec else ""
    return ("." + digits if digits else ""), value // 10 ** prec


def format_duration(seconds):
    """Format seconds exactly as Go's ``time.Duration.String()``: ``30s``, ``1m30s``, ``2h0m0s``, ``500ms``."""
    if not _is_number(seconds):
        raise ValueError("format_duration needs a number of seconds, got %s" % _show(seconds))
    ns = _to_nanoseconds(seconds)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    if ns < _NS_PER_SECOND:
        if ns < 10 ** 3:
            unit, prec = "ns", 0
        elif ns < 10 ** 6:
            unit, prec = u"\u00b5s", 3
        else:
            unit, prec = "ms", 6
        frac, whole = _fmt_frac(ns, prec)
        return "%s%d%s%s" % (sign, whole, frac, unit)
    frac, whole = _fmt_frac(ns, 9)
    text = "%d%ss" % (whole % 60, frac)
    minutes = whole // 60
    if minutes:
        text = "%dm%s" % (minutes % 60, text)
        hours = minutes // 60
        if hours:
            text = "%dh%s" % (hours, text)
    return sign + text


# --------------------------------------------------------------------------------------------
# Hook fields: command, container, on-error, timeout
# --------------------------------------------------------------------------------------------

def check_argv(argv):
    """Return ``argv`` if it is a non-empty list of strings with a non-empty program; else ValueError."""
    if not isinstance(argv, list) or not argv:
        raise ValueError("the command must be a non-empty list of strings")
    for position, item in enumerate(argv):
        if not isinstance(item, str):
            raise ValueError("element %d of the command is %s, not a string" % (position, _show(item)))
    if argv[0] == "":
        raise ValueError("the program (first element of the command) is empty")
    return list(argv)


def parse_command(value):
    """Parse a command annotation into an argv list, or None when it is empty (no hook).

    A value whose first character is ``[`` must be a JSON array of strings; anything else is ONE argv
    element (never split, never given to a shell).  Whitespace followed by ``[`` is an error.
    """
    if not isinstance(value, str):
        raise ValueError("the command must be a string, got %s" % _show(value))
    if value == "":
        return None
    if value[0] == "[":
        try:
            argv = json.loads(value)
        except ValueError as exc:
            raise ValueError("the command starts with '[' but is not a valid JSON array of strings (%s)" % exc)
        return check_argv(argv)
    if value.lstrip().startswith("["):
        raise ValueError("the command is whitespace followed by '[': remove the leading whitespace to give "
                         "a JSON array, or the command would be one program with that odd name")
    return [value]


def parse_on_error(value):
    """Return ``Fail`` or ``Continue`` (exactly, case-sensitive); None means the default ``Fail``."""
    if value is None:
        return DEFAULT_ON_ERROR
    if value not in ON_ERROR_VALUES:
        raise ValueError("on-error must be exactly Fail or Continue, got %s" % _show(value))
    return value


def parse_timeout(value):
    """Return the timeout in seconds; None means the default (30 seconds)."""
    if value is None:
        return DEFAULT_TIMEOUT
    return parse_duration(value)


def parse_container(value):
    """Return the container name, or None (the pod's first container) when unset."""
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise ValueError("the container must be a non-empty string, got %s" % _show(value))
    return value


# --------------------------------------------------------------------------------------------
# Namespace scope (Velero's includes/excludes with gobwas/glob patterns)
# --------------------------------------------------------------------------------------------

_GLOB_UNSUPPORTED = "|()!{},"
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def _glob_regex(pattern):
    """Translate a gobwas/glob pattern (no separators) into an anchored regex; ValueError if malformed.

    ``*`` is any run of characters, ``?`` one character, ``[abc]`` one of a list, ``[a-z]`` one range.
    """
    parts = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            end = pattern.find("]", pos + 1)
            if end == -1:
                raise ValueError("unclosed bracket '['")
            body = pattern[pos + 1:end]
            if body == "":
                raise ValueError("empty bracket '[]'")
            if len(body) > 1 and body[1] == "-":
                if len(body) != 3:
                    raise ValueError("a bracket range must be exactly [x-y], got [%s]" % body)
                if body[2] < body[0]:
                    raise ValueError("bracket range [%s] ends before it starts" % body)
                parts.append("[%s-%s]" % (re.escape(body[0]), re.escape(body[2])))
            else:
                parts.append("[%s]" % "".join(re.escape(c) for c in body))
            pos = end
        elif char == "]":
            raise ValueError("unmatched closing bracket ']'")
        else:
            parts.append(re.escape(char))
        pos += 1
    return re.compile("".join(parts) + r"\Z")


def compile_namespace_pattern(pattern):
    """Validate one namespace name or glob pattern as Velero does and return its compiled regex.

    Rejects: non-strings, the empty string, ``| ( ) ! { } ,``, ``**``, malformed brackets, and
    anything that is not a valid namespace name once ``* ? [ ]`` are replaced by a letter
    (lowercase letters, digits and ``-``, at most 63 characters, starting and ending alphanumeric).
    """
    if not isinstance(pattern, str):
        raise ValueError("namespace pattern %s is not a string" % _show(pattern))
    if pattern == "":
        raise ValueError("namespace pattern is empty")
    problem = None
    if any(c in _GLOB_UNSUPPORTED for c in pattern):
        problem = "it contains an unsupported character (one of | ( ) ! { } ,)"
    elif "**" in pattern:
        problem = "it contains consecutive asterisks (only single * allowed)"
    else:
        stand_in = re.sub(r"[*?\[\]]", "x", pattern)
        if len(stand_in) > 63 or not _DNS1123_LABEL.match(stand_in):
            problem = ("it is not a namespace name or glob: lowercase letters, digits and '-', starting and "
                       "ending with a letter or digit, at most 63 characters, plus * ? [...]")
    try:
        regex = _glob_regex(pattern)
    except ValueError as exc:
        problem = problem or str(exc)
    if problem:
        raise ValueError("invalid namespace pattern %s: %s" % (_show(pattern), problem))
    return regex


def _string_list(value, key):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _FieldError(key, value, "must be a list of strings")
    return value


class NamespaceScope(object):
    """Validated included/excluded namespace patterns: empty or ``*`` = all, exclude wins."""

    def __init__(self, included=None, excluded=None, included_key="included_namespaces",
                 excluded_key="excluded_namespaces"):
        included = _string_list(included, included_key)
        excluded = _string_list(excluded, excluded_key)
        if "*" in excluded:
            raise _FieldError(excluded_key, "*", "\"*\" is not allowed here (it would exclude every namespace)")
        self.include_all = not included or "*" in included
        self.included = [self._compile(p, included_key) for p in included]
        self.excluded = [self._compile(p, excluded_key) for p in excluded]

    @staticmethod
    def _compile(pattern, key):
        try:
            return compile_namespace_pattern(pattern)
        except ValueError as exc:
            raise _FieldError(key, pattern, str(exc))

    def matches(self, namespace):
        if any(regex.match(namespace) for regex in self.excluded):
            return False
        return self.include_all or any(regex.match(namespace) for regex in self.included)


def validate_namespace_scope(included, excluded):
    """Validate the ``included_namespaces``/``excluded_namespaces`` options; ScopeError when invalid."""
    try:
        return NamespaceScope(included, excluded)
    except ValueError as exc:
        raise ScopeError(str(exc))


def namespace_in_scope(namespace, included, excluded):
    """True when ``namespace`` is selected by the included/excluded patterns (ScopeError if invalid)."""
    return validate_namespace_scope(included, excluded).matches(namespace)


# --------------------------------------------------------------------------------------------
# Label selectors (k8s.io/apimachinery labels.Parse and metav1.LabelSelector)
# --------------------------------------------------------------------------------------------
# A requirement is a tuple (key, operator, values) with operator one of
# "in", "notin", "exists", "!" (does not exist), "gt", "lt"; "="/"==" are "in", "!=" is "notin".

Requirement = namedtuple("Requirement", "key operator values")

_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_SELECTOR_SPECIAL = "=!(),<>"
_SELECTOR_SPACE = " \t\r\n"
_SELECTOR_SYMBOLS = ("(", ")", ",", "!", "=", "==", "!=", ">", "<")
_SELECTOR_OPERATORS = {"in": "in", "notin": "notin", "=": "in", "==": "in", "!=": "notin", ">": "gt", "<": "lt"}
_INT64 = re.compile(r"[+-]?[0-9]+\Z")


def check_label_key(key):
    """ValueError unless ``key`` is a valid label key ([prefix/]name)."""
    if not isinstance(key, str):
        raise ValueError("label key %s is not a string" % _show(key))
    parts = key.split("/")
    if len(parts) > 2:
        raise ValueError("invalid label key %s: at most one '/' is allowed" % _show(key))
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            raise ValueError("invalid label key %s: the prefix before '/' is empty" % _show(key))
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            raise ValueError("invalid label key %s: the prefix must be a DNS subdomain (lowercase letters, "
                             "digits, '-' and '.', at most 253 characters)" % _show(key))
    if not name:
        raise ValueError("invalid label key %s: the name part is empty" % _show(key))
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError("invalid label key %s: the name must be at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit" % _show(key))


def check_label_value(key, value):
    """ValueError unless ``value`` is a valid label value (empty, or at most 63 characters)."""
    if not isinstance(value, str):
        raise ValueError("value of label %s is %s, not a string" % (_show(key), _show(value)))
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ValueError("invalid value %s for label %s: at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit" % (_show(value), _show(key)))


def make_requirement(key, operator, values):
    """Validate and build one Requirement, as apimachinery's NewRequirement."""
    check_label_key(key)
    values = tuple(sorted(set(values)))
    if operator in ("in", "notin") and not values:
        raise ValueError("label %s: 'in' and 'notin' need at least one value" % _show(key))
    if operator in ("exists", "!") and values:
        raise ValueError("label %s: exists and does-not-exist take no values" % _show(key))
    if operator in ("gt", "lt"):
        if len(values) != 1 or not _INT64.match(values[0]) or not -2 ** 63 <= int(values[0]) < 2 ** 63:
            raise ValueError("label %s: '>' and '<' need exactly one integer value" % _show(key))
    for value in values:
        check_label_value(key, value)
    return Requirement(key, operator, values)


def _lex_selector(text):
    """Tokens of a selector string: ("id", word), ("sym", symbol) and ("end", "")."""
    tokens = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _SELECTOR_SPACE:
            pos += 1
        if pos >= len(text):
            tokens.append(("end", ""))
            return tokens
        if text[pos] in _SELECTOR_SPECIAL:
            best = None
            end = pos
            while end < len(text) and text[end] in _SELECTOR_SPECIAL:
                end += 1
                if text[pos:end] in _SELECTOR_SYMBOLS:
                    best = end
                elif best is not None:
                    break
            tokens.append(("sym", text[pos:best]))
            pos = best
        else:
            end = pos
            while end < len(text) and text[end] not in _SELECTOR_SPECIAL and text[end] not in _SELECTOR_SPACE:
                end += 1
            tokens.append(("id", text[pos:end]))
            pos = end


class _SelectorParser(object):
    """apimachinery's labels.Parse grammar: requirement ("," requirement)*."""

    def __init__(self, text):
        self.tokens = _lex_selector(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos]

    def take(self):
        token = self.tokens[self.pos]
        if token[0] != "end":
            self.pos += 1
        return token

    @staticmethod
    def found(token):
        return "found %s" % (_show(token[1]) if token[0] != "end" else "end of string")

    def parse(self):
        requirements = []
        while True:
            token = self.peek()
            if token[0] == "end":
                return requirements
            if token[0] != "id" and token != ("sym", "!"):
                raise ValueError("%s, expected: !, a label key, or end of string" % self.found(token))
            requirements.append(self.requirement())
            token = self.take()
            if token[0] == "end":
                return requirements
            if token != ("sym", ","):
                raise ValueError("%s, expected: ',' or end of string" % self.found(token))
            after = self.peek()
            if after[0] != "id" and after != ("sym", "!"):
                raise ValueError("%s, expected: a label key after ','" % self.found(after))

    def requirement(self):
        token = self.take()
        negated = token == ("sym", "!")
        if negated:
            token = self.take()
        if token[0] != "id":
            raise ValueError("%s, expected: a label key" % self.found(token))
        key = token[1]
        check_label_key(key)
        following = self.peek()
        if negated or following[0] == "end" or following == ("sym", ","):
            return make_requirement(key, "!" if negated else "exists", ())
        token = self.take()
        operator = _SELECTOR_OPERATORS.get(token[1])
        if operator is None:
            raise ValueError("%s, expected: in, notin, =, ==, !=, >, <" % self.found(token))
        if operator in ("in", "notin") and token[0] == "id":
            values = self.value_set()
        else:
            values = self.exact_value()
        return make_requirement(key, operator, values)

    def value_set(self):
        """``( values )``, ported from apimachinery's parseValues/parseIdentifiersList (empty items are "")."""
        token = self.take()
        if token != ("sym", "("):
            raise ValueError("%s, expected: '('" % self.found(token))
        token = self.peek()
        if token == ("sym", ")"):
            self.take()
            return {""}
        if token[0] != "id" and token != ("sym", ","):
            raise ValueError("%s, expected: ',', ')' or a value" % self.found(token))
        values = set()
        while True:
            token = self.take()
            if token[0] == "id":
                values.add(token[1])
                after = self.peek()
                if after == ("sym", ")"):
                    self.take()
                    return values
                if after != ("sym", ","):
                    raise ValueError("%s, expected: ',' or ')'" % self.found(after))
            elif token == ("sym", ","):
                if not values:
                    values.add("")  # "(,"
                after = self.peek()
                if after == ("sym", ")"):
                    self.take()
                    values.add("")  # ",)"
                    return values
                if after == ("sym", ","):
                    self.take()
                    values.add("")  # ",,"
            else:
                raise ValueError("%s, expected: ',' or a value" % self.found(token))

    def exact_value(self):
        token = self.peek()
        if token[0] == "end" or token == ("sym", ","):
            return ("",)
        token = self.take()
        if token[0] != "id":
            raise ValueError("%s, expected: a value" % self.found(token))
        return (token[1],)


def parse_selector_string(text):
    """Parse one kubectl-style label selector string into a list of Requirements (ValueError if invalid)."""
    if not isinstance(text, str):
        raise ValueError("label selector %s is not a string" % _show(text))
    try:
        return _SelectorParser(text).parse()
    except ValueError as exc:
        raise ValueError("invalid label selector %s: %s" % (_show(text), exc))


def parse_label_selectors(selectors):
    """Validate the ``label_selectors`` option (a list of selector strings, ANDed); ScopeError if invalid.

    Returns the list of all Requirements.  Empty strings are ignored (they select everything).
    """
    try:
        requirements = []
        for text in _string_list(selectors, "label_selectors"):
            requirements.extend(parse_selector_string(text))
        return requirements
    except ValueError as exc:
        raise ScopeError(str(exc))


def label_selector_query(selectors):
    """The API's ``labelSelector`` query value for the ``label_selectors`` option, or "" for none.

    Validates first (ScopeError); the selectors are joined with ',' (AND), as kubernetes.core does.
    """
    parse_label_selectors(selectors)
    return ",".join(s.strip() for s in selectors or [] if s.strip())


def labels_match(requirements, labels):
    """True when a labels dict satisfies every Requirement (apimachinery's Requirement.Matches)."""
    labels = labels or {}
    for key, operator, values in requirements:
        present = key in labels
        value = labels.get(key)
        if operator == "in":
            ok = present and value in values
        elif operator == "notin":
            ok = not present or value not in values
        elif operator == "exists":
            ok = present
        elif operator == "!":
            ok = not present
        else:  # gt / lt
            ok = present and _INT64.match(value or "") is not None and (
                int(value) > int(values[0]) if operator == "gt" else int(value) < int(values[0]))
        if not ok:
            return False
    return True


def parse_label_selector_object(selector, where="labelSelector"):
    """Validate a metav1.LabelSelector dict (matchLabels, matchExpressions) into Requirements.

    ``{}`` selects everything.  Raises a ValueError whose ``key`` names the offending key.
    """
    if not isinstance(selector, dict):
        raise _FieldError(where, selector, "must be a mapping with matchLabels and/or matchExpressions")
    _reject_unknown_keys(selector, SELECTOR_KEYS, where)
    requirements = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise _FieldError(where + ".matchLabels", match_labels, "must be a mapping of label keys to values")
    for key in sorted(match_labels, key=str):
        try:
            requirements.append(make_requirement(key, "in", (match_labels[key],)))
        except ValueError as exc:
            raise _FieldError("%s.matchLabels.%s" % (where, key), match_labels[key], str(exc))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise _FieldError(where + ".matchExpressions", expressions, "must be a list")
    for position, expression in enumerate(expressions):
        requirements.append(_parse_expression(expression, "%s.matchExpressions[%d]" % (where, position)))
    return requirements


def _parse_expression(expression, where):
    if not isinstance(expression, dict):
        raise _FieldError(where, expression, "must be a mapping with key, operator and values")
    _reject_unknown_keys(expression, EXPRESSION_KEYS, where)
    operator = expression.get("operator")
    if operator not in EXPRESSION_OPERATORS:
        raise _FieldError(where + ".operator", operator, "must be one of In, NotIn, Exists, DoesNotExist")
    values = expression.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _FieldError(where + ".values", values, "must be a list of strings")
    try:
        return make_requirement(expression.get("key"), EXPRESSION_OPERATORS[operator], values)
    except ValueError as exc:
        raise _FieldError(where, expression, str(exc))


# --------------------------------------------------------------------------------------------
# Hook rules (Velero's Backup.spec.hooks.resources)
# --------------------------------------------------------------------------------------------

# A validated rule.  ``namespaces`` is a NamespaceScope, ``selector`` a list of Requirements or None;
# ``pre``/``post`` are lists of exec specs: dicts with ``container`` (None = the first container),
# ``command``, ``on_error``, ``timeout`` and ``key`` (where the hook sits, e.g. ``hooks[0].pre[1].exec``).
Rule = namedtuple("Rule", "name index namespaces applies_to_pods selector pre post")


def _rule_label(rule, index):
    name = rule.get("name") if isinstance(rule, dict) else None
    if isinstance(name, str) and name:
        return "hooks[%d] (%s)" % (index, _show(name))
    return "hooks[%d]" % index


def _rule_error(rule, index, key, value, problem):
    """A RuleError naming the rule, the key and the value; the parts are kept as attributes too."""
    label = _rule_label(rule, index)
    error = RuleError("hook rule %s: %s: %s (value: %s)" % (label, key, problem, _show(value)))
    error.rule = label
    error.key = key
    error.value = value
    return error


def resource_applies_to_pods(included, excluded):
    """Whether a rule's includedResources/excludedResources select pods (ValueError if malformed).

    Entries are read as Velero resolves them: case-insensitive, ``pod``/``po``/``pods.`` mean ``pods``,
    globs are matched against ``pods``; empty or ``*`` includes = all.  ``*`` in excludes is an error.
    """
    included = _string_list(included, "includedResources")
    excluded = _string_list(excluded, "excludedResources")
    if "*" in excluded:
        raise _FieldError("excludedResources", "*", "\"*\" is not allowed here (it would exclude everything)")

    def selects_pods(entry, key):
        if not isinstance(entry, str) or entry == "":
            raise _FieldError(key, entry, "not a resource name")
        name = entry.lower()
        resource, _dot, group = name.partition(".")
        if resource in POD_RESOURCE_NAMES and group == "":
            return True
        try:
            return _glob_regex(name).match("pods") is not None
        except ValueError as exc:
            raise _FieldError(key, entry, "invalid pattern: %s" % exc)

    excluded_hits = [selects_pods(e, "excludedResources") for e in excluded]
    included_hits = [selects_pods(e, "includedResources") for e in included if e != "*"]
    if any(excluded_hits):
        return False
    return not included or "*" in included or any(included_hits)


_EXEC_FIELDS = (("command", "command", check_argv), ("container", "container", parse_container),
                ("onError", "on_error", parse_on_error), ("timeout", "timeout", parse_timeout))


def _parse_exec(index, phase, position, entry):
    """Validate one ``pre``/``post`` entry; return its exec spec, or None when it has no ``exec``."""
    where = "%s[%d]" % (phase, position)
    if not isinstance(entry, dict):
        raise _FieldError(where, entry, "each entry must be a mapping with an exec key")
    _reject_unknown_keys(entry, RULE_HOOK_KEYS, where)
    spec = entry.get("exec")
    if spec is None:
        return None  # accepted silently, as Velero does
    where += ".exec"
    if not isinstance(spec, dict):
        raise _FieldError(where, spec, "exec must be a mapping")
    _reject_unknown_keys(spec, EXEC_KEYS, where)
    hook = {"key": "hooks[%d].%s" % (index, where)}
    for field, name, parse in _EXEC_FIELDS:
        try:
            hook[name] = parse(spec.get(field))
        except ValueError as exc:
            raise _FieldError("%s.%s" % (where, field), spec.get(field), str(exc))
    return hook


def _parse_rule_fields(rule, index):
    if not isinstance(rule, dict):
        raise _FieldError("hooks[%d]" % index, rule, "a rule must be a mapping")
    _reject_unknown_keys(rule, RULE_KEYS)
    name = rule.get("name")
    if not isinstance(name, str) or name == "":
        raise _FieldError("name", name, "every rule needs a name (a non-empty string)")
    namespaces = NamespaceScope(rule.get("includedNamespaces"), rule.get("excludedNamespaces"),
                                "includedNamespaces", "excludedNamespaces")
    applies_to_pods = resource_applies_to_pods(rule.get("includedResources"), rule.get("excludedResources"))
    selector = None
    if rule.get("labelSelector") is not None:
        selector = parse_label_selector_object(rule["labelSelector"])
    phases = {}
    for phase in PHASES:
        entries = rule.get(phase)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise _FieldError(phase, entries, "must be a list of hooks")
        specs = (_parse_exec(index, phase, position, entry) for position, entry in enumerate(entries))
        phases[phase] = [spec for spec in specs if spec is not None]
    return Rule(name, index, namespaces, applies_to_pods, selector, phases["pre"], phases["post"])


def parse_rule(rule, index):
    """Validate one rule (the ``index``-th of ``hooks``) into a Rule; RuleError naming rule, key and value."""
    try:
        return _parse_rule_fields(rule, index)
    except _FieldError as exc:
        raise _rule_error(rule, index, exc.key, exc.value, exc.problem)


def parse_rules(hooks):
    """Validate the ``hooks`` option (a list of rules) into Rules; the first invalid rule raises RuleError."""
    if hooks is None:
        return []
    if not isinstance(hooks, list):
        raise RuleError("hooks: must be a list of rules (the items of Velero's spec.hooks.resources), got %s"
                        % _show(hooks))
    return [parse_rule(rule, index) for index, rule in enumerate(hooks)]


def rule_applies(rule, namespace, labels):
    """Velero's order: namespace, then resource (pods), then the label selector."""
    if not rule.namespaces.matches(namespace):
        return False
    if not rule.applies_to_pods:
        return False
    return rule.selector is None or labels_match(rule.selector, labels)


# --------------------------------------------------------------------------------------------
# Pods: annotations + rules -> planned hooks and errors
# --------------------------------------------------------------------------------------------

def pod_containers(pod):
    """(first container name or None, set of names hooks may run in: containers + native sidecars)."""
    spec = pod.get("spec") or {}
    regular = [c.get("name") for c in spec.get("containers") or []]
    sidecars = [c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return (regular[0] if regular else None), set(regular + sidecars)


def annotation_hook(annotations, phase):
    """The raw annotation hook of a phase: ``{field: (key, value or None)}``, or None when there is none.

    A phase has an annotation hook when its command annotation is non-empty; for ``pre``, the legacy
    un-prefixed keys are used when there is no ``pre.`` command.
    """
    annotations = annotations or {}
    candidates = [phase, None] if phase == "pre" else [phase]
    for prefix in candidates:
        if annotations.get(annotation_key(prefix, "command")):
            fields = ("command", "container", "on-error", "timeout")
            return dict((f, (annotation_key(prefix, f), annotations.get(annotation_key(prefix, f))))
                        for f in fields)
    return None


# A hook of a phase before the pod check: ``fields`` holds what parsed (command, container, on_error,
# timeout), ``problems`` the (key, value, message) of what did not.
_Candidate = namedtuple("_Candidate", "source name fields problems container_key")

_ANNOTATION_FIELDS = (("command", "command", parse_command), ("container", "container", parse_container),
                      ("on-error", "on_error", parse_on_error), ("timeout", "timeout", parse_timeout))


def _annotation_candidate(raw):
    fields = {}
    problems = []
    for annotation_field, name, parse in _ANNOTATION_FIELDS:
        key, value = raw[annotation_field]
        try:
            fields[name] = parse(value)
        except ValueError as exc:
            problems.append((key, value, str(exc)))
    return _Candidate(SOURCE_ANNOTATION, FROM_ANNOTATION, fields, problems, raw["container"][0])


def _phase_candidates(metadata, rules, phase):
    """The phase's hooks in order: the annotation hook alone if there is one, else every applicable rule's."""
    raw = annotation_hook(metadata.get("annotations"), phase)
    if raw is not None:
        return [_annotation_candidate(raw)]
    namespace = metadata.get("namespace") or ""
    return [_Candidate(SOURCE_SPEC, rule.name, spec, [], spec["key"] + ".container")
            for rule in rules if rule_applies(rule, namespace, metadata.get("labels"))
            for spec in getattr(rule, phase)]


def _container_problem(container, default, allowed):
    """Why ``container`` (None = the default) cannot run a hook in this pod, or None."""
    if not allowed or (container is None and default is None):
        return "the pod has no containers"
    if container is not None and container not in allowed:
        return "no such container: %s" % _show(container)
    return None


def resolve_pod(pod, rules):
    """Resolve one pod's hooks: ``{namespace, name, phase, pre, post, errors}`` (see INTERFACES.md).

    ``rules`` are parsed Rules (see parse_rules).  Per phase, an annotation hook wins over all rules;
    otherwise every applicable rule's hooks for the phase, rules in list order, each rule's list in order.
    An invalid hook goes to ``errors`` with the position it has in its phase (``index``), not to pre/post.
    """
    metadata = pod.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    name = metadata.get("name") or ""
    entry = {"namespace": namespace, "name": name, "phase": (pod.get("status") or {}).get("phase"),
             "pre": [], "post": [], "errors": []}
    default, allowed = pod_containers(pod)
    for phase in PHASES:
        for index, candidate in enumerate(_phase_candidates(metadata, rules, phase)):
            fields, problems = candidate.fields, list(candidate.problems)
            if "container" in fields:
                problem = _container_problem(fields["container"], default, allowed)
                if problem:
                    problems.append((candidate.container_key, fields["container"], problem))
            base = {"source": candidate.source, "name": candidate.name, "index": index}
            if problems:
                detail = "; ".join("%s=%s: %s" % (key, _show(value), text) for key, value, text in problems)
                message = "pod %s/%s: %s hook %s (%s): %s" % (
                    namespace, name, phase, _show(candidate.name), candidate.source, detail)
                entry["errors"].append(dict(base, namespace=namespace, pod=name, phase=phase, key=problems[0][0],
                                            value=problems[0][1], message=message))
            else:
                entry[phase].append(dict(base, container=fields["container"] or default,
                                         command=list(fields["command"]), on_error=fields["on_error"],
                                         timeout=fields["timeout"]))
    return entry


def _as_rules(rules):
    if not rules:
        return []
    if all(isinstance(rule, Rule) for rule in rules):
        return list(rules)
    return parse_rules(rules)


def build_plan(pods, rules, included_namespaces=None, excluded_namespaces=None, label_selectors=None):
    """The plan for ``pods`` (dicts): ``{"pods": [pod entry...], "errors": [error...]}``.

    ``rules`` may be parsed Rules or the raw ``hooks`` option (validated here: RuleError).  Pods outside
    the namespace scope or not matching ``label_selectors`` are left out (ScopeError if the scope is
    invalid).  Entries are sorted by namespace, then name.
    """
    rules = _as_rules(rules)
    scope = validate_namespace_scope(included_namespaces, excluded_namespaces)
    requirements = parse_label_selectors(label_selectors)
    entries = []
    for pod in pods or []:
        metadata = pod.get("metadata") or {}
        if scope.matches(metadata.get("namespace") or "") and labels_match(requirements, metadata.get("labels")):
            entries.append(resolve_pod(pod, rules))
    entries.sort(key=lambda e: (e["namespace"], e["name"]))
    return {"pods": entries, "errors": [error for e in entries for error in e["errors"]]}


def phase_sequence(pod_entry, phase):
    """A phase's ordered list: valid hooks (no ``message``) and invalid ones (with ``message``) by ``index``.

    Works on a plain dict, e.g. a pod entry that went through Ansible as ``plan``.
    """
    if phase not in PHASES:
        raise ValueError("phase must be pre or post, got %s" % _show(phase))
    items = list(pod_entry.get(phase) or [])
    items += [error for error in pod_entry.get("errors") or [] if error.get("phase") == phase]
    ordered = sorted(enumerate(items), key=lambda pair: (pair[1].get("index", pair[0]), pair[0]))
    return [item for _position, item in ordered]
