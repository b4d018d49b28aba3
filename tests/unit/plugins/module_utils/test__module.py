"""The optional JMESPath ``query`` of pod_hooks_info and backup_info, and ``outcome``: work -> result or failure."""
import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._module import apply_query, outcome

RESULT = {"pods": [{"name": "a", "pre": [{"command": ["x"]}]}, {"name": "b", "pre": []}], "errors": []}


def test_query_selects_from_the_result():
    assert apply_query(RESULT, "pods[?pre].name") == ["a"]


def test_a_bad_expression_is_a_clear_error_naming_it():
    with pytest.raises(KubehooksError, match=r"query 'pods\[\?' is not a valid JMESPath expression"):
        apply_query(RESULT, "pods[?")


def test_outcome_is_the_result_or_a_clear_failure():
    """One place turns work into a result, for a module run and a run in the controller's process alike."""
    assert outcome(lambda: {"changed": True, "n": 1}, {}) == (False, {"changed": True, "n": 1})
    assert outcome(lambda: {"failed": True, "msg": "phase Failed"}, {}) == (True, {"msg": "phase Failed"})
    assert outcome(lambda: dict(RESULT), {"query": "pods[0].name"})[1]["query_result"] == "a"

    def refused():
        error = KubehooksError("backup x not found")
        error.result = {"plan": []}
        raise error
    assert outcome(refused, {}) == (True, {"plan": [], "msg": "backup x not found"})

    def broken():
        return {}["missing"]
    failed, result = outcome(broken, {})
    assert failed and result["msg"] == "Unexpected error (please report it): KeyError: 'missing'"
    assert "Traceback" in result["exception"]
    assert outcome(lambda: dict(RESULT), {"query": "pods[?"})[1]["msg"].startswith("query 'pods[?' is not a valid")
