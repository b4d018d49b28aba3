"""Pure parts of raw API access: exec URLs and LIST paths."""
from ansible_collections.kubehooks.backup.plugins.module_utils._api import exec_url, pods_path, status_message

try:
    from urllib.parse import parse_qsl, urlparse
except ImportError:  # pragma: no cover
    from urlparse import parse_qsl, urlparse


def test_exec_url_passes_argv_verbatim_without_stdin_or_tty():
    url = exec_url("https://10.250.0.2:6443/", "db", "pg-0", "pg", ["/usr/bin/printf", "%s|", "a b", "c&d=e"])
    parsed = urlparse(url)
    assert (parsed.scheme, parsed.path) == ("wss", "/api/v1/namespaces/db/pods/pg-0/exec")
    query = parse_qsl(parsed.query, keep_blank_values=True)
    assert [v for k, v in query if k == "command"] == ["/usr/bin/printf", "%s|", "a b", "c&d=e"]
    assert dict((k, v) for k, v in query if k != "command") == {
        "container": "pg", "stdin": "false", "stdout": "true", "stderr": "true", "tty": "false"}


def test_pods_paths():
    assert pods_path() == "/api/v1/pods"
    assert pods_path("team-a") == "/api/v1/namespaces/team-a/pods"


def test_status_message():
    assert status_message(b'{"message": "forbidden"}', "x") == "forbidden"
    assert status_message(b"<html>", "fallback") == "fallback"
    assert status_message(None, "fallback") == "fallback"
