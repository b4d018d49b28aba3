"""The optional JMESPath ``query`` of pod_hooks_info and backup_info."""
import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._module import apply_query

RESULT = {"pods": [{"name": "a", "pre": [{"command": ["x"]}]}, {"name": "b", "pre": []}], "errors": []}


def test_query_selects_from_the_result():
    assert apply_query(RESULT, "pods[?pre].name") == ["a"]


def test_a_bad_expression_is_a_clear_error_naming_it():
    with pytest.raises(KubehooksError, match=r"query 'pods\[\?' is not a valid JMESPath expression"):
        apply_query(RESULT, "pods[?")
