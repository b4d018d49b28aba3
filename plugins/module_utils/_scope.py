# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: scope matching - namespaces, label selectors, resources. Not a public API.

What a backup (or a restore) covers, as Velero decides it: namespace names and globs
(gobwas/glob, ``NamespaceScope``), label selectors (apimachinery's ``labels.Parse`` and
``metav1.LabelSelector``), and resource include/exclude (``ResourceFilter``, Velero's
``IncludesExcludes`` over names resolved through discovery, and whether hook rules select pods).
Discovery, the hook rules, the export and the record all match scope here.  Pure, no I/O.

Decisions where the contract is silent:

* Namespace patterns are checked as Velero checks backup namespaces (``wildcard.ValidateNamespaceName``
  plus the namespace-name check with ``*?[]`` replaced), then as gobwas/glob compiles them:
  ``[x-y]`` is exactly one range with x <= y, any other ``[...]`` is a list of characters.
  An empty pattern is invalid too (it can only match cluster-scoped items, never a pod).
* ``*`` in a rule's ``excludedResources`` is an error (Velero silently ignores it).
* Empty strings in ``label_selectors`` are ignored (an empty selector selects everything); the
  selector syntax is apimachinery's ``labels.Parse``, including ``>``/``<`` and ``a=`` (empty value).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import re
from collections import namedtuple

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import (
    FieldError,
    ScopeError,
    reject_unknown_keys,
    show_value,
    string_list,
)

SELECTOR_KEYS = ("matchLabels", "matchExpressions")
EXPRESSION_KEYS = ("key", "operator", "values")
EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
POD_RESOURCE_NAMES = ("pods", "pod", "po")
NAMESPACES = "namespaces"
# Velero's controller always adds these to the excluded resources.
AUTO_EXCLUDED = (
    "volumesnapshots.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
)


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
        raise ValueError("namespace pattern %s is not a string" % show_value(pattern))
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
        raise ValueError("invalid namespace pattern %s: %s" % (show_value(pattern), problem))
    return regex


class NamespaceScope(object):
    """Validated included/excluded namespace patterns: empty or ``*`` = all, exclude wins."""

    def __init__(self, included=None, excluded=None, included_key="included_namespaces",
                 excluded_key="excluded_namespaces"):
        included = string_list(included, included_key)
        excluded = string_list(excluded, excluded_key)
        if "*" in excluded:
            raise FieldError(excluded_key, "*", "\"*\" is not allowed here (it would exclude every namespace)")
        self.include_all = not included or "*" in included
        self.included = [self._compile(p, included_key) for p in included]
        self.excluded = [self._compile(p, excluded_key) for p in excluded]

    @staticmethod
    def _compile(pattern, key):
        try:
            return compile_namespace_pattern(pattern)
        except ValueError as exc:
            raise FieldError(key, pattern, str(exc))

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
        raise ValueError("label key %s is not a string" % show_value(key))
    parts = key.split("/")
    if len(parts) > 2:
        raise ValueError("invalid label key %s: at most one '/' is allowed" % show_value(key))
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            raise ValueError("invalid label key %s: the prefix before '/' is empty" % show_value(key))
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            raise ValueError("invalid label key %s: the prefix must be a DNS subdomain (lowercase letters, "
                             "digits, '-' and '.', at most 253 characters)" % show_value(key))
    if not name:
        raise ValueError("invalid label key %s: the name part is empty" % show_value(key))
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError("invalid label key %s: the name must be at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit" % show_value(key))


def check_label_value(key, value):
    """ValueError unless ``value`` is a valid label value (empty, or at most 63 characters)."""
    if not isinstance(value, str):
        raise ValueError("value of label %s is %s, not a string" % (show_value(key), show_value(value)))
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ValueError("invalid value %s for label %s: at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit" % (show_value(value), show_value(key)))


def make_requirement(key, operator, values):
    """Validate and build one Requirement, as apimachinery's NewRequirement."""
    check_label_key(key)
    for value in values:
        check_label_value(key, value)  # before the set: a list or a mapping is not hashable
    values = tuple(sorted(set(values)))
    if operator in ("in", "notin") and not values:
        raise ValueError("label %s: 'in' and 'notin' need at least one value" % show_value(key))
    if operator in ("exists", "!") and values:
        raise ValueError("label %s: exists and does-not-exist take no values" % show_value(key))
    if operator in ("gt", "lt"):
        if len(values) != 1 or not _INT64.match(values[0]) or not -2 ** 63 <= int(values[0]) < 2 ** 63:
            raise ValueError("label %s: '>' and '<' need exactly one integer value" % show_value(key))
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
        return "found %s" % (show_value(token[1]) if token[0] != "end" else "end of string")

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
        raise ValueError("label selector %s is not a string" % show_value(text))
    try:
        return _SelectorParser(text).parse()
    except ValueError as exc:
        raise ValueError("invalid label selector %s: %s" % (show_value(text), exc))


def parse_label_selectors(selectors):
    """Validate the ``label_selectors`` option (a list of selector strings, ANDed); ScopeError if invalid.

    Returns the list of all Requirements.  Empty strings are ignored (they select everything).
    """
    try:
        requirements = []
        for text in string_list(selectors, "label_selectors"):
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
        raise FieldError(where, selector, "must be a mapping with matchLabels and/or matchExpressions")
    reject_unknown_keys(selector, SELECTOR_KEYS, where)
    requirements = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise FieldError(where + ".matchLabels", match_labels, "must be a mapping of label keys to values")
    for key in sorted(match_labels, key=str):
        try:
            requirements.append(make_requirement(key, "in", (match_labels[key],)))
        except ValueError as exc:
            raise FieldError("%s.matchLabels.%s" % (where, key), match_labels[key], str(exc))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise FieldError(where + ".matchExpressions", expressions, "must be a list")
    for position, expression in enumerate(expressions):
        requirements.append(_parse_expression(expression, "%s.matchExpressions[%d]" % (where, position)))
    return requirements


def _parse_expression(expression, where):
    if not isinstance(expression, dict):
        raise FieldError(where, expression, "must be a mapping with key, operator and values")
    reject_unknown_keys(expression, EXPRESSION_KEYS, where)
    operator = expression.get("operator")
    if not isinstance(operator, str) or operator not in EXPRESSION_OPERATORS:
        raise FieldError(where + ".operator", operator, "must be one of In, NotIn, Exists, DoesNotExist")
    values = expression.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise FieldError(where + ".values", values, "must be a list of strings")
    try:
        return make_requirement(expression.get("key"), EXPRESSION_OPERATORS[operator], values)
    except ValueError as exc:
        raise FieldError(where, expression, str(exc))


# --------------------------------------------------------------------------------------------
# Label selectors as a Backup spec holds them (metav1.LabelSelector) and as velero shows them
# --------------------------------------------------------------------------------------------

def selector_object(selectors):
    """metav1.LabelSelector for the ``label_selectors`` option (strings, ANDed), or None.

    Returns None when there is no selector or one cannot be expressed as a LabelSelector (``gt``/
    ``lt``); the strings are always kept in an annotation as well.
    """
    requirements = parse_label_selectors([s for s in selectors or [] if s.strip()])
    if not requirements:
        return None
    match_labels = {}
    expressions = []
    operators = {"in": "In", "notin": "NotIn", "exists": "Exists", "!": "DoesNotExist"}
    for key, operator, values in requirements:
        if operator not in operators:
            return None
        if operator == "in" and len(values) == 1 and key not in match_labels:
            match_labels[key] = values[0]
            continue
        expression = {"key": key, "operator": operators[operator]}
        if operator in ("in", "notin"):
            expression["values"] = sorted(values)
        expressions.append(expression)
    selector = {}
    if match_labels:
        selector["matchLabels"] = match_labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def format_label_selector(selector):
    """metav1.FormatLabelSelector, approximately: ``app=db,tier in (a,b)``; ``<none>`` when empty."""
    if not selector:
        return "<none>"
    parts = ["%s=%s" % (k, v) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            parts.append("%s in (%s)" % (key, values))
        elif operator == "NotIn":
            parts.append("%s notin (%s)" % (key, values))
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append("!%s" % key)
    return ",".join(parts) or "<none>"


# --------------------------------------------------------------------------------------------
# Resources: hook rules (do they select pods?) and the export's include/exclude
# --------------------------------------------------------------------------------------------

def resource_applies_to_pods(included, excluded):
    """Whether a rule's includedResources/excludedResources select pods (ValueError if malformed).

    Entries are read as Velero resolves them: case-insensitive, ``pod``/``po``/``pods.`` mean ``pods``,
    globs are matched against ``pods``; empty or ``*`` includes = all.  ``*`` in excludes is an error.
    """
    included = string_list(included, "includedResources")
    excluded = string_list(excluded, "excludedResources")
    if "*" in excluded:
        raise FieldError("excludedResources", "*", "\"*\" is not allowed here (it would exclude everything)")

    def selects_pods(entry, key):
        if not isinstance(entry, str) or entry == "":
            raise FieldError(key, entry, "not a resource name")
        name = entry.lower()
        resource, _dot, group = name.partition(".")
        if resource in POD_RESOURCE_NAMES and group == "":
            return True
        try:
            return _glob_regex(name).match("pods") is not None
        except ValueError as exc:
            raise FieldError(key, entry, "invalid pattern: %s" % exc)

    excluded_hits = [selects_pods(e, "excludedResources") for e in excluded]
    included_hits = [selects_pods(e, "includedResources") for e in included if e != "*"]
    if any(excluded_hits):
        return False
    return not included or "*" in included or any(included_hits)


def glob_match(patterns, value):
    """True when ``value`` matches one of the glob ``patterns`` (``*``, ``?``, ``[...]``; no separator)."""
    for pattern in patterns:
        if pattern == value or fnmatch.fnmatchcase(value, pattern):
            return True
    return False


def resolve_resource_name(item, resources):
    """Resolve a user's resource name to ``resource.group`` as Velero's discovery helper does.

    ``item`` may be a plural (``deployments``), a singular or kind (``deployment``), a short name
    (``deploy``), each optionally qualified by its group (``deployments.apps``).  Exact plural names
    win over singular/kind names, which win over short names; among equals the core group, then
    discovery order.  ``*`` stays ``*``; an unresolvable entry is returned as typed (a glob such as
    ``*.apps`` then still matches, and a typo matches nothing rather than everything).
    """
    if not isinstance(item, str) or item == "*":
        return item
    text = item.strip().lower()
    resource, _dot, group = text.partition(".")
    candidates = [r for r in resources if not group or r["group"] == group]
    for level in (lambda r: r["resource"] == resource,
                  lambda r: r["singular"] == resource or r["kind"].lower() == resource,
                  lambda r: resource in r["short_names"]):
        found = [r for r in candidates if level(r)]
        if found:
            found.sort(key=lambda r: 0 if r["group"] == "" else 1)  # stable: core first
            return found[0]["group_resource"]
    return item


class ResourceFilter(object):
    """Velero's IncludesExcludes over resolved group-resource names (globs; exclude wins)."""

    def __init__(self, included=None, excluded=None, resources=(), auto_excluded=AUTO_EXCLUDED):
        resources = list(resources)
        self.includes = set()
        for item in included or []:
            self.includes.add(item if item == "*" else resolve_resource_name(item, resources))
        self.excludes = set(auto_excluded)
        for item in excluded or []:
            if item != "*":  # Velero ignores a wildcard in the excludes
                self.excludes.add(resolve_resource_name(item, resources))
        # Velero removes auto-excluded names from the includes (exclude wins anyway).
        self.user_excludes = set(self.excludes) - set(auto_excluded)

    def should_include(self, name):
        if glob_match(self.excludes, name):
            return False
        return not self.includes or "*" in self.includes or glob_match(self.includes, name)

    def include_everything(self):
        """No include list (or only ``*``) and no user exclusion."""
        return not self.user_excludes and (not self.includes or self.includes == {"*"})


def namespaces_include_everything(included, excluded):
    """Velero's NamespaceIncludesExcludes.IncludeEverything: all namespaces, no exclusion.

    ``*`` beside other entries still means all (this collection's scope rule, see the scope options).
    """
    included = list(included or [])
    return not list(excluded or []) and (not included or "*" in included)


def include_resource_type(name, namespaced, include_cluster_resources, all_namespaces, resource_filter):
    """Velero's GlobalIncludesExcludes.ShouldInclude for one resource type.

    ``include_cluster_resources``: None (auto), True or False.  ``all_namespaces``: the result of
    :func:`namespaces_include_everything`.
    """
    if not namespaced and include_cluster_resources is False:
        return False
    if name != NAMESPACES and not namespaced and include_cluster_resources is None and not all_namespaces:
        return False
    return resource_filter.should_include(name)


def namespaces_to_list(scope, included, existing=None):
    """The namespaces to LIST namespaced resources in: ``[None]`` means one cluster-wide LIST.

    ``scope`` is the validated NamespaceScope of ``included`` (the raw included_namespaces list)
    and the excluded namespaces.  ``existing``: the cluster's namespace names, or None
    when they could not be listed (then only plain included names can be used).  Returns
    (namespaces, problems) where problems are messages for included names that do not exist or
    patterns that could not be expanded.
    """
    if scope.include_all:
        return [None], []
    included = list(included or [])
    problems = []
    if existing is None:
        plain = [p for p in included if not any(c in p for c in "*?[")]
        for pattern in included:
            if pattern not in plain:
                problems.append("cannot expand the namespace pattern %r: listing namespaces is not "
                                "permitted" % pattern)
        return sorted(set(n for n in plain if scope.matches(n))), problems
    existing = set(existing)
    for pattern in included:
        if not any(c in pattern for c in "*?[") and pattern not in existing:
            problems.append("namespace %s given in included_namespaces does not exist" % pattern)
    return sorted(n for n in existing if scope.matches(n)), problems
