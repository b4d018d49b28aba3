# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: Go durations (time.ParseDuration / Duration.String). Not a public API.

Hook timeouts and a backup's ``ttl`` are Go durations as Velero writes them (``500ms``, ``30s``,
``1m30s``, ``2h``); a bare number is seconds here (Velero silently turns it into its 30s default).
Pure, no third-party imports.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import re
from fractions import Fraction

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import show_value


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
            raise ValueError("a number is expected at %s" % show_value(text[pos:]))
        if not unit:
            raise ValueError("missing unit after %s" % number)
        if unit not in _UNIT_NS:
            raise ValueError("unknown unit %s (valid units: ns, us, \u00b5s, ms, s, m, h)" % show_value(unit))
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
            raise ValueError("invalid duration %s: not a finite number" % show_value(value))
        if value <= 0:
            raise ValueError("invalid duration %s: it must be greater than zero" % show_value(value))
        if value > _MAX_DURATION_NS / _NS_PER_SECOND:
            raise ValueError("invalid duration %s: it is too long (Go durations end at about 292 years)"
                             % show_value(value))
        return value
    if not isinstance(value, str):
        raise ValueError("invalid duration %s: expected a string or a number; %s" % (show_value(value), _DURATION_HINT))
    if value == "":
        raise ValueError("invalid duration \"\": it is empty; %s" % _DURATION_HINT)
    if value != value.strip():
        raise ValueError("invalid duration %s: surrounding whitespace is not allowed" % show_value(value))
    if value[0] == "-":
        raise ValueError("invalid duration %s: it must not be negative" % show_value(value))
    text = value[1:] if value[0] == "+" else value
    try:
        if _BARE_NUMBER.match(text):
            nanoseconds = _number_ns(text, _NS_PER_SECOND)
        elif text == "":
            raise ValueError("it is empty")
        else:
            nanoseconds = _go_duration_ns(text)
    except ValueError as exc:
        raise ValueError("invalid duration %s: %s; %s" % (show_value(value), exc, _DURATION_HINT))
    if nanoseconds > _MAX_DURATION_NS:
        raise ValueError("invalid duration %s: it is too long (Go durations end at about 292 years)" % show_value(value))
    if nanoseconds <= 0:
        raise ValueError("invalid duration %s: it must be greater than zero" % show_value(value))
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
        raise ValueError("format_duration needs a number of seconds, got %s" % show_value(seconds))
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
