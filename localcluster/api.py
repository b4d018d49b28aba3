"""A minimal Kubernetes API client (stdlib urllib) for the tool itself: JSON in, JSON out."""
import json
import ssl
import urllib.error
import urllib.request


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Api:
    def __init__(self, server, token, ca_file, timeout=10):
        self.server = server
        self.token = token
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=str(ca_file))

    @classmethod
    def admin(cls, cfg, timeout=10):
        from . import pki
        return cls(cfg.server, pki.token(cfg, "admin"), cfg.pki_dir / "ca.crt", timeout)

    def request(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.ctx) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")[:500]) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def create(self, path, body, exist_ok=True):
        """POST; an object that already exists is fine when exist_ok."""
        try:
            return self.request("POST", path, body)
        except ApiError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def patch(self, path, body):
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path):
        try:
            return self.request("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def healthy(self):
        """True when /readyz answers ok (a real API call, not a socket check)."""
        try:
            return self.request("GET", "/readyz") == "ok"
        except (OSError, ApiError):
            return False
