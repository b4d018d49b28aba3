"""_kubeconfig reads a configuration as the kubernetes library does, or leaves it to the library.

The oracle is the library itself: every configuration below is loaded by ``_kubeconfig.load`` and by
``_client.build_configuration`` (the kubernetes library's loaders, as before), and what a request would
carry is compared - host, certificate checks, the CA, client certificate and key (by content: data is
written to files by both), the SNI name and the Authorization header.  The floor run (kubernetes 30.1)
compares against that version's loaders too.
"""
import base64
import json
import os
import stat
import sys

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _client, _kubeconfig
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

PEM_CA = b"-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"
PEM_CERT = b"-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n"
PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n"


def b64(data):
    return base64.b64encode(data).decode()


def kubeconfig(cluster, user=None, context_extra=None, current="main", extra_contexts=()):
    config = {"apiVersion": "v1", "kind": "Config", "current-context": current,
              "clusters": [{"name": "c", "cluster": cluster}],
              "contexts": [{"name": "main", "context": dict({"cluster": "c", "user": "u"}, **(context_extra or {}))}]
              + list(extra_contexts)}
    if user is not None:
        config["users"] = [{"name": "u", "user": user}]
    return config


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No proxy, no in-cluster service, and a KUBECONFIG of the test's own (both loaders read them)."""
    import kubernetes.config.kube_config as library_kube_config
    for name in _kubeconfig.PROXY_VARIABLES + ("no_proxy", "NO_PROXY", "KUBERNETES_SERVICE_HOST",
                                               "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    default = str(tmp_path / "default-kubeconfig")
    monkeypatch.setenv("KUBECONFIG", default)
    monkeypatch.setattr(library_kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", default)
    return default


def seen(configuration):
    """What a request made with ``configuration`` carries (read after ``auth_settings()``, which runs the
    library's refresh hook as every request does)."""
    headers = _api.exec_headers(configuration, clock=lambda: -1e9 - id(configuration))

    def content(path):
        if not path:
            return None
        with open(path, "rb") as handle:
            return handle.read()
    return dict(host=configuration.host, verify_ssl=configuration.verify_ssl, ca=content(configuration.ssl_ca_cert),
                cert=content(configuration.cert_file), key=content(configuration.key_file),
                tls_server_name=getattr(configuration, "tls_server_name", None), headers=headers)


def both(auth):
    ours = _kubeconfig.load(dict(auth))
    assert ours is not None, "left to the library: %r" % (auth,)
    return seen(ours), seen(_client.build_configuration(dict(auth)))


def write_yaml(path, config):
    with open(str(path), "w") as handle:
        json.dump(config, handle)  # JSON is YAML
    return str(path)


def files(tmp_path):
    pki = tmp_path / "kube" / "pki"
    pki.mkdir(parents=True)
    for name, data in (("ca.crt", PEM_CA), ("client.crt", PEM_CERT), ("client.key", PEM_KEY), ("token", b"filetok")):
        (pki / name).write_bytes(data)
    return tmp_path / "kube"


CASES = {
    "token, CA file relative to the kubeconfig": (
        {"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, {"token": "tok"}),
    "CA and client certificate as data": (
        {"server": "https://api:6443/", "certificate-authority-data": b64(PEM_CA)},
        {"client-certificate-data": b64(PEM_CERT), "client-key-data": b64(PEM_KEY)}),
    "client certificate files": (
        {"server": "https://api:6443", "certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}),
    "tokenFile": ({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, {"tokenFile": "pki/token"}),
    "token wins over tokenFile and basic": (
        {"server": "https://api:6443", "certificate-authority": "pki/ca.crt"},
        {"token": "tok", "tokenFile": "pki/token", "username": "a", "password": "b"}),
    "empty token, basic credentials": ({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"},
                                       {"token": "", "username": "a", "password": "b"}),
    "basic credentials": ({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"},
                          {"username": "admin", "password": "p:w é"}),
    "insecure-skip-tls-verify": ({"server": "https://api:6443", "insecure-skip-tls-verify": True}, {"token": "t"}),
    "insecure-skip-tls-verify false": ({"server": "https://api:6443", "insecure-skip-tls-verify": False,
                                        "certificate-authority": "pki/ca.crt"}, {"token": "t"}),
    "tls-server-name": ({"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(PEM_CA),
                         "tls-server-name": "api.internal"}, {"token": "t"}),
    "http server: no TLS files read": (
        {"server": "http://api:8080", "certificate-authority": "pki/missing.crt"},
        {"client-certificate": "pki/missing.crt", "token": "t"}),
    "no users section": ({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, None),
    "user empty": ({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_kubeconfig_file_is_read_as_the_library_reads_it(clean_env, tmp_path, case):
    cluster, user = CASES[case]
    path = write_yaml(files(tmp_path) / "config", kubeconfig(cluster, user))
    ours, library = both({"kubeconfig": path})
    assert ours == library


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_kubeconfig_dict_is_read_as_the_library_reads_it(clean_env, tmp_path, monkeypatch, case):
    cluster, user = CASES[case]
    monkeypatch.chdir(str(files(tmp_path)))  # a dict's relative paths are relative to the working directory
    ours, library = both({"kubeconfig": kubeconfig(cluster, user)})
    assert ours == library


def test_context_selection_the_default_location_and_options_over_the_kubeconfig(clean_env, tmp_path):
    base = files(tmp_path)
    other = {"name": "other", "context": {"cluster": "c2", "user": "u2"}}
    config = kubeconfig({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, {"token": "tok"},
                        extra_contexts=[other])
    config["clusters"].append({"name": "c2", "cluster": {"server": "https://other:6443",
                                                         "insecure-skip-tls-verify": True}})
    config["users"].append({"name": "u2", "user": {"token": "tok2"}})
    path = write_yaml(base / "config", config)
    ours, library = both({"kubeconfig": path, "context": "other"})
    assert ours == library and ours["host"] == "https://other:6443" and ours["verify_ssl"] is False
    config["clusters"][0]["cluster"]["certificate-authority"] = str(base / "pki" / "ca.crt")
    write_yaml(clean_env, config)  # KUBECONFIG, read when no option names a kubeconfig
    ours, library = both({"context": "other"})
    assert ours == library and ours["headers"] == {"authorization": "Bearer tok2"}
    ours, library = both({})  # not in a cluster: the default kubeconfig, its current context
    assert ours == library and ours["host"] == "https://api:6443"
    options = {"kubeconfig": path, "validate_certs": False}  # an option the library's refresh hook leaves alone
    ours, library = both(_client.resolve_auth(options, {}))
    assert ours == library and ours["verify_ssl"] is False


@pytest.mark.parametrize("auth", [
    {"host": "https://api:6443/", "api_key": "tok", "validate_certs": False},
    {"host": "https://api:6443", "client_cert": "CERT", "client_key": "KEY", "ca_cert": "CA"},
    {"host": "https://api:6443", "username": "u", "password": "p", "ca_cert": "CA"},
    {"host": "http://api:8080", "api_key": "tok"},
])
def test_host_with_credentials_needs_no_kubeconfig(clean_env, tmp_path, auth):
    auth, base = dict(auth), files(tmp_path)
    for option, name in (("client_cert", "client.crt"), ("client_key", "client.key"), ("ca_cert", "ca.crt")):
        if option in auth:
            auth[option] = str(base / "pki" / name)
    resolved = _client.resolve_auth(auth, {})
    ours, library = both(resolved)
    assert ours == library and ours["host"] == auth["host"].rstrip("/")


@pytest.mark.parametrize("host", ["10.96.0.1", "fd00::1"])
def test_in_cluster_service_account_as_the_library_and_its_token_reread(clean_env, tmp_path, monkeypatch, host):
    import kubernetes.config.incluster_config as library_incluster
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text(u"sa-token-1")
    ca.write_bytes(PEM_CA)
    for module in (library_incluster, _kubeconfig):
        monkeypatch.setattr(module, "SERVICE_TOKEN_FILENAME", str(token))
        monkeypatch.setattr(module, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    write_yaml(clean_env, kubeconfig({"server": "https://not-this:6443", "certificate-authority-data": b64(PEM_CA)},
                                     {"token": "no"}))
    connection = _kubeconfig.load({})
    ours, library = seen(connection), seen(_client.build_configuration({}))
    assert ours == library and ours["headers"] == {"authorization": "bearer sa-token-1"}
    token.write_text(u"sa-token-2")  # the kubelet rotates it; read again once a minute, as the library does
    monkeypatch.setattr(connection, "_token_expires", 0.0)
    assert connection.auth_settings()["BearerToken"]["value"] == "bearer sa-token-2"
    threads = []  # a refresh while the library's configuration is built (the stdin exec path) must not block
    monkeypatch.setattr(connection, "_token_expires", 0.0)
    import threading
    worker = threading.Thread(target=lambda: threads.append(connection.library_configuration()), daemon=True)
    worker.start()
    worker.join(10)
    assert threads and seen(threads[0])["headers"] == {"authorization": "bearer sa-token-2"}
    option = _kubeconfig.load({"api_key": "option"})  # an api_key option is kept: never replaced by a re-read
    monkeypatch.setattr(option, "_token_expires", 0.0)
    assert option.auth_settings()["BearerToken"]["value"] == "Bearer option"
    token.write_text(u"")  # emptied while running: a clear error, not a traceback
    monkeypatch.setattr(connection, "_token_expires", 0.0)
    with pytest.raises(KubehooksError, match="Could not read the service account token .*: the file is empty"):
        connection.auth_settings()
    assert seen(_kubeconfig.load({})) == seen(_client.build_configuration({}))  # empty at start: not in a cluster


def test_data_files_are_private_and_shared_by_content(clean_env, tmp_path):
    config = kubeconfig({"server": "https://api:6443", "certificate-authority-data": b64(PEM_CA)},
                        {"client-certificate-data": b64(PEM_CERT), "client-key-data": b64(PEM_KEY)})
    first, second = _kubeconfig.load({"kubeconfig": config}), _kubeconfig.load({"kubeconfig": config})
    assert first.key_file == second.key_file and first.ssl_ca_cert != first.key_file
    assert stat.S_IMODE(os.stat(first.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(first.key_file)).st_mode) == 0o700


def test_remove_private_files_removes_them_now_and_later_files_go_to_a_new_directory(clean_env, tmp_path):
    """For a process that leaves without atexit handlers (a controller task worker, plugin_utils._in_process)."""
    config = kubeconfig({"server": "https://api:6443", "certificate-authority-data": b64(PEM_CA)}, {"token": "t"})
    first = _kubeconfig.load({"kubeconfig": config}).ssl_ca_cert
    _kubeconfig.remove_private_files()
    assert not os.path.exists(os.path.dirname(first))
    _kubeconfig.remove_private_files()   # nothing left: a no-op
    again = _kubeconfig.load({"kubeconfig": config}).ssl_ca_cert
    assert os.path.isfile(again) and os.path.dirname(again) != os.path.dirname(first)
    with open(again, "rb") as handle:
        assert handle.read() == PEM_CA


def _exec_plugin(tmp_path):
    script = tmp_path / "credential-plugin"
    script.write_text(u"#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', "
                      u"'kind': 'ExecCredential', 'status': {'token': 'from-plugin'}}))\n" % sys.executable)
    script.chmod(0o700)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}}


@pytest.mark.parametrize("case", ["exec plugin", "auth-provider", "proxy-url", "proxy option", "proxy headers",
                                  "persist_config", "https_proxy variable", "two files in KUBECONFIG",
                                  "missing kubeconfig", "missing CA file", "bad CA data", "missing tokenFile",
                                  "unknown context", "duplicate cluster", "no contexts", "https without a CA",
                                  "empty CA data", "null server", "null token", "null CA data", "null CA file",
                                  "null insecure flag", "password beyond latin-1"])
def test_what_the_library_must_read_is_left_to_it(clean_env, tmp_path, monkeypatch, case):
    base = files(tmp_path)
    cluster, user, auth = {"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}, {"token": "t"}, {}
    config = None
    if case == "https without a CA":
        del cluster["certificate-authority"]
    elif case == "empty CA data":
        cluster = {"server": "https://api:6443", "certificate-authority-data": ""}
    elif case == "null server":
        cluster["server"] = None
    elif case == "null token":
        user = {"token": None, "username": "a", "password": "b"}
    elif case == "null CA data":
        cluster = {"server": "https://api:6443", "certificate-authority-data": None}
    elif case == "null CA file":
        cluster["certificate-authority"] = None
    elif case == "null insecure flag":
        cluster["insecure-skip-tls-verify"] = None
    elif case == "password beyond latin-1":
        user = {"username": "a", "password": u"\u20ac"}
    elif case == "exec plugin":
        user = _exec_plugin(tmp_path)
    elif case == "auth-provider":
        user = {"auth-provider": {"name": "oidc", "config": {"id-token": "x"}}}
    elif case == "proxy-url":
        cluster["proxy-url"] = "http://proxy:3128"
    elif case == "proxy option":
        auth["proxy"] = "http://proxy:3128"
    elif case == "proxy headers":
        auth["proxy_headers"] = {"user_agent": "x"}
    elif case == "persist_config":
        auth["persist_config"] = True
    elif case == "https_proxy variable":
        monkeypatch.setenv("https_proxy", "http://proxy:3128")
    elif case == "two files in KUBECONFIG":
        monkeypatch.setenv("KUBECONFIG", clean_env + os.pathsep + str(base / "config"))
    elif case == "missing CA file":
        cluster["certificate-authority"] = "pki/nope.crt"
    elif case == "bad CA data":
        cluster["certificate-authority-data"] = "abc"  # incorrect padding
    elif case == "missing tokenFile":
        user = {"tokenFile": "pki/nope"}
    elif case == "unknown context":
        auth["context"] = "nope"
    elif case == "duplicate cluster":
        config = kubeconfig(cluster, user)
        config["clusters"].append(config["clusters"][0])
    elif case == "no contexts":
        config = kubeconfig(cluster, user)
        del config["contexts"]
    config = config or kubeconfig(cluster, user)
    if case == "two files in KUBECONFIG":
        write_yaml(base / "config", config)
    elif case != "missing kubeconfig":
        auth.setdefault("kubeconfig", write_yaml(base / "config", config))
    else:
        auth["kubeconfig"] = str(base / "nope")
    assert _kubeconfig.load(dict(auth)) is None


def test_an_exec_plugin_kubeconfig_still_works_through_the_library(clean_env, tmp_path):
    """The fallback end to end: ClientFactory hands out the library's ApiClient, which runs the plugin."""
    import kubernetes
    path = write_yaml(tmp_path / "config", kubeconfig({"server": "https://api:6443"}, _exec_plugin(tmp_path)))
    factory = _client.ClientFactory({"kubeconfig": path}, {})
    assert isinstance(factory(), kubernetes.client.ApiClient)
    assert _api.exec_headers(factory.configuration) == {"authorization": "Bearer from-plugin"}


def test_a_readable_configuration_gets_the_rest_client(clean_env, tmp_path):
    from ansible_collections.kubehooks.backup.plugins.module_utils import _rest
    path = write_yaml(tmp_path / "config", kubeconfig({"server": "https://api:6443",
                                                       "certificate-authority-data": b64(PEM_CA)}, {"token": "t"}))
    factory = _client.ClientFactory({"kubeconfig": path}, {})
    assert isinstance(factory.configuration, _kubeconfig.Connection) and isinstance(factory(), _rest.RestClient)
    assert factory.host == "https://api:6443"


def test_options_win_over_the_kubeconfig_token_host_ca_and_client_certificate(clean_env, tmp_path):
    """The one deliberate difference (module docstring): the library's refresh hook sets the kubeconfig's
    token, host, CA and client certificate again before each request, so the options lose to them."""
    base = files(tmp_path)
    path = write_yaml(base / "config", kubeconfig({"server": "https://api:6443", "certificate-authority": "pki/ca.crt"},
                                                  {"token": "kubeconfig"}))
    auth = _client.resolve_auth({"kubeconfig": path, "api_key": "option", "ca_cert": str(base / "pki" / "client.crt"),
                                 "client_cert": str(base / "pki" / "client.crt"),
                                 "client_key": str(base / "pki" / "client.key")}, {})
    ours, library = seen(_kubeconfig.load(dict(auth))), seen(_client.build_configuration(dict(auth)))
    assert ours == dict(library, ca=PEM_CERT, cert=PEM_CERT, key=PEM_KEY, headers={"authorization": "Bearer option"})
    assert library["headers"] == {"authorization": "Bearer kubeconfig"} and library["ca"] == PEM_CA
    auth = _client.resolve_auth({"kubeconfig": path, "host": "https://other:6443"}, {})
    ours, library = seen(_kubeconfig.load(dict(auth))), seen(_client.build_configuration(dict(auth)))
    assert ours == dict(library, host="https://other:6443") and library["host"] == "https://api:6443"


def test_modules_do_not_import_the_kubernetes_library(tmp_path):
    """What a module run imports for a readable configuration: not the library (0.16-0.4 s per run)."""
    import subprocess
    path = write_yaml(tmp_path / "config", kubeconfig({"server": "https://127.0.0.1:1",
                                                       "certificate-authority-data": b64(PEM_CA)}, {"token": "t"}))
    code = ("import sys; from ansible_collections.kubehooks.backup.plugins.module_utils import _client, _hook_runs, "
            "_restore, _create, _section, _export, _api; f = _client.ClientFactory({'kubeconfig': %r}, {}); f(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))" % path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
