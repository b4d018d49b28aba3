# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _durations: Go durations as hook timeouts and ttl (a bare number is seconds)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _durations as durations


# ============================================================================================
# timeout is a Go duration; bare number = seconds; zero/negative/garbage are errors
# ============================================================================================

@pytest.mark.parametrize("value, seconds", [
    pytest.param("30s", 30, id="go-duration-seconds"),
    pytest.param("500ms", 0.5, id="go-duration-milliseconds"),
    pytest.param("1m30s", 90, id="go-duration-compound"),
    pytest.param("2h", 7200, id="go-duration-hours"),
    pytest.param("1.5h", 5400, id="go-duration-fractional-hours"),
    pytest.param("1h2m3s4ms", 3723.004, id="go-duration-four-units"),
    pytest.param("250us", 0.00025, id="go-duration-us"),
    pytest.param(u"250\u00b5s", 0.00025, id="go-duration-micro-sign"),
    pytest.param(u"250\u03bcs", 0.00025, id="go-duration-greek-mu"),
    pytest.param("1500ns", 0.0000015, id="go-duration-ns"),
    pytest.param(".5s", 0.5, id="go-duration-leading-dot"),
    pytest.param("+45s", 45, id="go-duration-plus-sign"),
    pytest.param("300", 300, id="bare-number-is-seconds-not-velero-30s"),
    pytest.param("1.5", 1.5, id="bare-decimal-is-seconds"),
    pytest.param(60, 60, id="number-is-seconds"),
    pytest.param(0.25, 0.25, id="float-is-seconds"),
])
def test_parse_duration_accepts(value, seconds):
    result = durations.parse_duration(value)
    assert result == pytest.approx(seconds, abs=1e-12)
    assert not isinstance(result, bool)


def test_parse_duration_whole_seconds_are_int():
    assert isinstance(durations.parse_duration("1m"), int)
    assert isinstance(durations.parse_duration("300"), int)
    assert isinstance(durations.parse_duration("500ms"), float)


@pytest.mark.parametrize("value, reason", [
    pytest.param("", "empty", id="timeout-empty-is-error"),
    pytest.param("0", "greater than zero", id="timeout-zero-is-error-not-velero-30s"),
    pytest.param("0s", "greater than zero", id="timeout-zero-with-unit-is-error"),
    pytest.param("0.0", "greater than zero", id="timeout-zero-decimal-is-error"),
    pytest.param(0, "greater than zero", id="timeout-number-zero-is-error"),
    pytest.param("-5s", "negative", id="timeout-negative-is-error-not-velero-forever"),
    pytest.param("-1", "negative", id="timeout-negative-bare-is-error"),
    pytest.param(-3, "greater than zero", id="timeout-negative-number-is-error"),
    pytest.param(" 30s", "whitespace", id="timeout-leading-space-is-error"),
    pytest.param("30s ", "whitespace", id="timeout-trailing-space-is-error"),
    pytest.param("\t30s", "whitespace", id="timeout-tab-is-error"),
    pytest.param("abc", "number is expected", id="timeout-garbage-is-error"),
    pytest.param("1y", "unknown unit", id="timeout-unknown-unit-is-error"),
    pytest.param("1h30", "missing unit", id="timeout-missing-unit-is-error"),
    pytest.param("30 s", "unknown unit", id="timeout-inner-space-is-error"),
    pytest.param("1e3", "unknown unit", id="timeout-exponent-is-error"),
    pytest.param(".", "number is expected", id="timeout-lone-dot-is-error"),
    pytest.param("s", "number is expected", id="timeout-unit-only-is-error"),
    pytest.param("3000000h", "too long", id="timeout-beyond-go-range-is-error"),
    pytest.param(True, "string or a number", id="timeout-bool-is-error"),
    pytest.param(["30s"], "string or a number", id="timeout-list-is-error"),
    pytest.param(float("nan"), "finite", id="timeout-nan-is-error"),
])
def test_parse_duration_rejects(value, reason):
    with pytest.raises(ValueError) as info:
        durations.parse_duration(value)
    assert reason in str(info.value)
    assert "invalid duration" in str(info.value)


@pytest.mark.parametrize("seconds, text", [
    pytest.param(30, "30s", id="go-string-seconds"),
    pytest.param(90, "1m30s", id="go-string-minutes"),
    pytest.param(60, "1m0s", id="go-string-whole-minute"),
    pytest.param(7200, "2h0m0s", id="go-string-hours-keep-zero-units"),
    pytest.param(3661.5, "1h1m1.5s", id="go-string-fraction-of-second"),
    pytest.param(0.5, "500ms", id="go-string-milliseconds"),
    pytest.param(0.0015, "1.5ms", id="go-string-fractional-milliseconds"),
    pytest.param(0.000001, u"1\u00b5s", id="go-string-microseconds-micro-sign"),
    pytest.param(0.0000015, u"1.5\u00b5s", id="go-string-fractional-microseconds"),
    pytest.param(0.000000001, "1ns", id="go-string-nanoseconds"),
    pytest.param(1.25, "1.25s", id="go-string-trims-trailing-zeros"),
    pytest.param(0, "0s", id="go-string-zero"),
    pytest.param(-30, "-30s", id="go-string-negative"),
    pytest.param(5400, "1h30m0s", id="go-string-one-and-a-half-hours"),
])
def test_format_duration_matches_go(seconds, text):
    assert durations.format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "1m30s", "500ms", "2h0m0s", "1h1m1.5s", u"1.5\u00b5s", "10ns"])
def test_format_duration_round_trips_go_strings(text):
    assert durations.format_duration(durations.parse_duration(text)) == text


def test_format_duration_rejects_non_numbers():
    with pytest.raises(ValueError):
        durations.format_duration("30s")
