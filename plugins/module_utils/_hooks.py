# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: hook rules, annotation parsing and resolution into a plan. Not a public API.

Turns pod objects (plain dicts in the API's JSON shape) and hook rules (Velero's
``Backup.spec.hooks.resources`` items) into the plan that ``pod_hooks_info`` returns and
``pod_hooks`` runs.  No I/O and no third-party imports: everything here is deterministic and is
the one place for hook defaults and validation.

The contract is Velero's documented hook semantics (the README and ``ansible-doc
kubehooks.backup.pod_hooks_info`` say where this collection is stricter).  Where Velero silently
falls back to a default (bad JSON command, bad on-error, bad timeout), this module reports a
validation error.  Durations are :mod:`_durations`', scope matching (namespaces, selectors,
resources) is :mod:`_scope`'s.

Decisions where the contract is silent (also in the functions' docstrings):

* An annotation hook that is invalid still takes precedence over the rules for its phase: the phase
  then holds that one invalid hook (an error entry), never the rules' hooks in its place.
* A ``container``, ``on-error`` or ``timeout`` annotation that is present but empty is invalid
  (only an empty ``command`` means "no hook", as in Velero).  In rules, ``null`` means unset.
* The first element of a command (the program) must not be empty.
* In rules, ``timeout`` may also be a number (seconds), like a bare number in the annotation.
* Annotation keys under ``hook.backup.velero.io/`` other than the four known ones are ignored (Velero
  ignores them too).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
from collections import namedtuple

from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration, parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import parse_on_error
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import (
    FieldError,
    RuleError,
    reject_unknown_keys,
    show_value,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import (
    NamespaceScope,
    labels_match,
    parse_label_selector_object,
    parse_label_selectors,
    resource_applies_to_pods,
    validate_namespace_scope,
)

# --------------------------------------------------------------------------------------------
# Constants: the one place for names and defaults
# --------------------------------------------------------------------------------------------

PHASES = ("pre", "post")
ANNOTATION_DOMAIN = "hook.backup.velero.io/"
FROM_ANNOTATION = "<from-annotation>"
SOURCE_ANNOTATION = "annotation"
SOURCE_SPEC = "spec"
DEFAULT_TIMEOUT = 30  # seconds

RULE_KEYS = ("name", "includedNamespaces", "excludedNamespaces", "includedResources",
             "excludedResources", "labelSelector", "pre", "post")
RULE_HOOK_KEYS = ("exec",)
EXEC_KEYS = ("container", "command", "onError", "timeout")


def annotation_key(phase, field):
    """Annotation name of ``field`` for ``phase`` (``pre``/``post``), or the legacy key for phase ``None``."""
    return (phase + "." if phase else "") + ANNOTATION_DOMAIN + field


# --------------------------------------------------------------------------------------------
# Hook fields: command, container, on-error, timeout
# --------------------------------------------------------------------------------------------

def check_argv(argv):
    """Return ``argv`` if it is a non-empty list of strings with a non-empty program; else ValueError."""
    if not isinstance(argv, list) or not argv:
        raise ValueError("the command must be a non-empty list of strings")
    for position, item in enumerate(argv):
        if not isinstance(item, str):
            raise ValueError("element %d of the command is %s, not a string" % (position, show_value(item)))
    if argv[0] == "":
        raise ValueError("the program (first element of the command) is empty")
    return list(argv)


def parse_command(value):
    """Parse a command annotation into an argv list, or None when it is empty (no hook).

    A value whose first character is ``[`` must be a JSON array of strings; anything else is ONE argv
    element (never split, never given to a shell).  Whitespace followed by ``[`` is an error.
    """
    if not isinstance(value, str):
        raise ValueError("the command must be a string, got %s" % show_value(value))
    if value == "":
        return None
    if value[0] == "[":
        if value[1:].lstrip().startswith("["):
            # A nested array is never an argv; refused before parsing, so that a value nested
            # thousands deep cannot exhaust the parser's recursion (it fails this pod, not discovery).
            raise ValueError("the command is a nested JSON array; it must be a flat JSON array of strings")
        try:
            argv = json.loads(value)
        except RecursionError:
            raise ValueError("the command starts with '[' but is nested too deeply to be a JSON array of strings")
        except ValueError as exc:
            raise ValueError("the command starts with '[' but is not a valid JSON array of strings (%s)" % exc)
        return check_argv(argv)
    if value.lstrip().startswith("["):
        raise ValueError("the command is whitespace followed by '[': remove the leading whitespace to give "
                         "a JSON array, or the command would be one program with that odd name")
    return [value]


def parse_timeout(value):
    """Return the timeout in seconds; None means the default (30 seconds)."""
    if value is None:
        return DEFAULT_TIMEOUT
    return parse_duration(value)


def parse_max_hook_timeout(value, key="max_hook_timeout"):
    """The ``max_hook_timeout`` option in seconds, or None when it is unset (no cap, as Velero)."""
    if value is None or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleError("%s: %s" % (key, exc))


def check_max_timeout(timeout, max_timeout):
    """ValueError when a hook's ``timeout`` (seconds) is longer than ``max_timeout`` (None: no cap)."""
    if max_timeout is not None and timeout is not None and timeout > max_timeout:
        raise ValueError("the timeout %s is longer than max_hook_timeout (%s)"
                         % (format_duration(timeout), format_duration(max_timeout)))
    return timeout


def parse_container(value):
    """Return the container name, or None (the pod's first container) when unset."""
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise ValueError("the container must be a non-empty string, got %s" % show_value(value))
    return value


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
        return "hooks[%d] (%s)" % (index, show_value(name))
    return "hooks[%d]" % index


def _rule_error(rule, index, key, value, problem):
    """A RuleError naming the rule, the key and the value; the parts are kept as attributes too."""
    label = _rule_label(rule, index)
    error = RuleError("hook rule %s: %s: %s (value: %s)" % (label, key, problem, show_value(value)))
    error.rule = label
    error.key = key
    error.value = value
    return error


_EXEC_FIELDS = (("command", "command", check_argv), ("container", "container", parse_container),
                ("onError", "on_error", parse_on_error), ("timeout", "timeout", parse_timeout))


def _parse_exec(index, phase, position, entry, max_timeout=None):
    """Validate one ``pre``/``post`` entry; return its exec spec, or None when it has no ``exec``."""
    where = "%s[%d]" % (phase, position)
    if not isinstance(entry, dict):
        raise FieldError(where, entry, "each entry must be a mapping with an exec key")
    reject_unknown_keys(entry, RULE_HOOK_KEYS, where)
    spec = entry.get("exec")
    if spec is None:
        return None  # accepted silently, as Velero does
    where += ".exec"
    if not isinstance(spec, dict):
        raise FieldError(where, spec, "exec must be a mapping")
    reject_unknown_keys(spec, EXEC_KEYS, where)
    hook = {"key": "hooks[%d].%s" % (index, where)}
    for field, name, parse in _EXEC_FIELDS:
        try:
            hook[name] = parse(spec.get(field))
        except ValueError as exc:
            raise FieldError("%s.%s" % (where, field), spec.get(field), str(exc))
    try:
        check_max_timeout(hook["timeout"], max_timeout)
    except ValueError as exc:
        raise FieldError("%s.timeout" % where, spec.get("timeout"), str(exc))
    return hook


def parse_rule_scope(rule, index, allowed_keys=RULE_KEYS):
    """What every hook rule (backup or restore, Velero's ``spec.hooks.resources`` item) starts with:
    ``(name, NamespaceScope, applies to pods, label selector or None)``; FieldError naming the key."""
    if not isinstance(rule, dict):
        raise FieldError("hooks[%d]" % index, rule, "a rule must be a mapping")
    reject_unknown_keys(rule, allowed_keys)
    name = rule.get("name")
    if not isinstance(name, str) or name == "":
        raise FieldError("name", name, "every rule needs a name (a non-empty string)")
    namespaces = NamespaceScope(rule.get("includedNamespaces"), rule.get("excludedNamespaces"),
                                "includedNamespaces", "excludedNamespaces")
    applies_to_pods = resource_applies_to_pods(rule.get("includedResources"), rule.get("excludedResources"))
    selector = None
    if rule.get("labelSelector") is not None:
        selector = parse_label_selector_object(rule["labelSelector"])
    return name, namespaces, applies_to_pods, selector


def _parse_rule_fields(rule, index, max_timeout=None):
    name, namespaces, applies_to_pods, selector = parse_rule_scope(rule, index)
    phases = {}
    for phase in PHASES:
        entries = rule.get(phase)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise FieldError(phase, entries, "must be a list of hooks")
        specs = (_parse_exec(index, phase, position, entry, max_timeout) for position, entry in enumerate(entries))
        phases[phase] = [spec for spec in specs if spec is not None]
    return Rule(name, index, namespaces, applies_to_pods, selector, phases["pre"], phases["post"])


def parse_rule(rule, index, max_timeout=None):
    """Validate one rule (the ``index``-th of ``hooks``) into a Rule; RuleError naming rule, key and value.

    ``max_timeout`` (seconds, None = no cap): a hook whose timeout is longer is invalid.
    """
    try:
        return _parse_rule_fields(rule, index, max_timeout)
    except FieldError as exc:
        raise _rule_error(rule, index, exc.key, exc.value, exc.problem)


def parse_rules(hooks, max_timeout=None):
    """Validate the ``hooks`` option (a list of rules) into Rules; the first invalid rule raises RuleError."""
    if hooks is None:
        return []
    if not isinstance(hooks, list):
        raise RuleError("hooks: must be a list of rules (the items of Velero's spec.hooks.resources), got %s"
                        % show_value(hooks))
    return [parse_rule(rule, index, max_timeout) for index, rule in enumerate(hooks)]


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
_Candidate = namedtuple("_Candidate", "source name fields problems container_key timeout")

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
    return _Candidate(SOURCE_ANNOTATION, FROM_ANNOTATION, fields, problems, raw["container"][0], raw["timeout"])


def _phase_candidates(metadata, rules, phase):
    """The phase's hooks in order: the annotation hook alone if there is one, else every applicable rule's."""
    raw = annotation_hook(metadata.get("annotations"), phase)
    if raw is not None:
        return [_annotation_candidate(raw)]
    namespace = metadata.get("namespace") or ""
    return [_Candidate(SOURCE_SPEC, rule.name, spec, [], spec["key"] + ".container",
                       (spec["key"] + ".timeout", spec.get("timeout")))
            for rule in rules if rule_applies(rule, namespace, metadata.get("labels"))
            for spec in getattr(rule, phase)]


def _container_problem(container, default, allowed):
    """Why ``container`` (None = the default) cannot run a hook in this pod, or None."""
    if not allowed or (container is None and default is None):
        return "the pod has no containers"
    if container is not None and container not in allowed:
        return "no such container: %s" % show_value(container)
    return None


def resolve_pod(pod, rules, max_timeout=None):
    """Resolve one pod's hooks: ``{namespace, name, phase, pre, post, errors}`` (pod_hooks_info's ``pods``).

    ``rules`` are parsed Rules (see parse_rules).  Per phase, an annotation hook wins over all rules;
    otherwise every applicable rule's hooks for the phase, rules in list order, each rule's list in order.
    An invalid hook goes to ``errors`` with the position it has in its phase (``index``), not to pre/post;
    so does a hook whose timeout is longer than ``max_timeout`` (seconds; None = no cap).
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
            try:
                check_max_timeout(fields.get("timeout"), max_timeout)
            except ValueError as exc:
                problems.append((candidate.timeout[0], candidate.timeout[1], str(exc)))
            if "container" in fields:
                problem = _container_problem(fields["container"], default, allowed)
                if problem:
                    problems.append((candidate.container_key, fields["container"], problem))
            base = {"source": candidate.source, "name": candidate.name, "index": index}
            if problems:
                detail = "; ".join("%s=%s: %s" % (key, show_value(value), text) for key, value, text in problems)
                message = "pod %s/%s: %s hook %s (%s): %s" % (
                    namespace, name, phase, show_value(candidate.name), candidate.source, detail)
                entry["errors"].append(dict(base, namespace=namespace, pod=name, phase=phase, key=problems[0][0],
                                            value=problems[0][1], message=message))
            else:
                entry[phase].append(dict(base, container=fields["container"] or default,
                                         command=list(fields["command"]), on_error=fields["on_error"],
                                         timeout=fields["timeout"]))
    return entry


def _as_rules(rules, max_timeout=None):
    if not rules:
        return []
    if all(isinstance(rule, Rule) for rule in rules):
        return list(rules)
    return parse_rules(rules, max_timeout)


def build_plan(pods, rules, included_namespaces=None, excluded_namespaces=None, label_selectors=None,
               max_timeout=None):
    """The plan for ``pods`` (dicts): ``{"pods": [pod entry...], "errors": [error...]}``.

    ``rules`` may be parsed Rules or the raw ``hooks`` option (validated here: RuleError).  Pods outside
    the namespace scope or not matching ``label_selectors`` are left out (ScopeError if the scope is
    invalid).  Entries are sorted by namespace, then name.  ``max_timeout``: see resolve_pod.
    """
    rules = _as_rules(rules, max_timeout)
    scope = validate_namespace_scope(included_namespaces, excluded_namespaces)
    requirements = parse_label_selectors(label_selectors)
    entries = []
    for pod in pods or []:
        metadata = pod.get("metadata") or {}
        if scope.matches(metadata.get("namespace") or "") and labels_match(requirements, metadata.get("labels")):
            entries.append(resolve_pod(pod, rules, max_timeout))
    entries.sort(key=lambda e: (e["namespace"], e["name"]))
    return {"pods": entries, "errors": [error for e in entries for error in e["errors"]]}


def phase_sequence(pod_entry, phase):
    """A phase's ordered list: valid hooks (no ``message``) and invalid ones (with ``message``) by ``index``.

    Works on a plain dict, e.g. a pod entry that went through Ansible as ``plan``.
    """
    if phase not in PHASES:
        raise ValueError("phase must be pre or post, got %s" % show_value(phase))
    items = list(pod_entry.get(phase) or [])
    items += [error for error in pod_entry.get("errors") or [] if error.get("phase") == phase]
    ordered = sorted(enumerate(items), key=lambda pair: (pair[1].get("index", pair[0]), pair[0]))
    return [item for _position, item in ordered]
