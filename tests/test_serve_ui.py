"""The web pages of `wfo serve`: sign-in, sessions, CSRF, throttling, CSP, the configuration form
generated from the model, users and audit pages, `wfo audit`; and, in headless Chromium against a
`wfo serve` process over TLS, a whole session: sign in, fill the form, launch, watch the run end,
open its report; a viewer who sees no launch button and whose forged POST is refused; markup in
a run title shown as text; a cross-site form post refused."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import types
import typing
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest
from pydantic import BaseModel

from tests.conftest import SAMPLE
from tests.opservers import make_certificate
from tests.test_serve import free_port
from wfo_kit.cli import main
from wfo_kit.config import Config
from wfo_kit.serve import configform, webauth
from wfo_kit.serve.users import add_user, load_users

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = {"ada": "admin", "alice": "analyst", "vic": "viewer", "bob": "analyst"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HOSTILE = '<script>window.__pwned = 1</script><b id="bold">x</b> & <img src=x id=img>'


def sample_data(root: Path) -> Path:
    data = root / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    return data


# -------------------------------------------- HTTP: the pages of a `wfo serve` process on loopback


@dataclass
class Local:
    url: str
    out: Path
    data: Path
    tokens: dict[str, str]
    tls: ssl.SSLContext

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls, timeout=30)

    def sign_in(self, name: str, token: str | None = None) -> httpx.Client:
        client = self.client()
        csrf = CSRF.search(client.get("/ui/login").text)[1]
        response = client.post(
            "/ui/login",
            data={"name": name, "token": token or self.tokens[name], "csrf_token": csrf},
        )
        assert response.status_code == 303, response.text
        return client

    def audit(self, until: typing.Callable[[list[dict]], bool] = bool) -> list[dict]:
        """The audit log once ``until`` holds: a request's line is written after its response."""
        return read_audit_until(self.out, until)


def read_audit_until(out: Path, until: typing.Callable[[list[dict]], bool]) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        path = out / "audit.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        entries = [json.loads(x) for x in lines]
        if until(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


@pytest.fixture(scope="module")
def local(served: Served) -> Local:
    """The `wfo serve` process of the Chromium test: these tests run while its worker warms up."""
    return Local(served.url, served.out, served.data, served.tokens, served.tls)


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def test_sign_in_cookie_flags_and_the_csp(local: Local) -> None:
    with local.client() as client:
        login = client.get("/ui/login")
        assert login.status_code == 200
        assert login.headers["content-security-policy"] == (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        )
        assert "<script>" not in login.text  # the only script is /ui/static/app.js
        assert '<script src="/ui/static/app.js" defer></script>' in login.text
        assert " style=" not in login.text
        csrf = cookie_header(login, webauth.LOGIN_CSRF_COOKIE)
        assert "HttpOnly" in csrf
        assert "SameSite=strict" in csrf
        assert "Secure" in csrf
        static = client.get("/ui/static/app.js")
        assert static.status_code == 200
        assert "innerHTML" not in static.text.replace("never innerHTML", "")

        assert client.get("/ui/runs").headers["location"] == "/ui/login?next=/ui/runs"
        token = CSRF.search(login.text)[1]
        wrong = client.post(
            "/ui/login", data={"name": "alice", "token": "wfo_x", "csrf_token": token}
        )
        assert wrong.status_code == 401
        assert "do not match" in wrong.text
        signed = client.post(
            "/ui/login",
            data={
                "name": "alice",
                "token": local.tokens["alice"],
                "csrf_token": token,
                "next": "/ui/history",
            },
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/history"
        session = cookie_header(signed, webauth.SESSION_COOKIE)
        for flag in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={8 * 3600}", "Secure"):
            assert flag in session
        assert local.tokens["alice"] not in session
        runs = client.get("/ui/runs")
        assert runs.status_code == 200
        assert runs.headers["content-security-policy"].startswith("default-src 'none'")
        assert runs.headers["x-frame-options"] == "DENY"
        assert runs.headers["strict-transport-security"] == "max-age=31536000"
        assert 'id="whoami">alice (analyst)' in runs.text

    with local.client() as again:  # an offsite `next` is not followed
        token = CSRF.search(again.get("/ui/login").text)[1]
        offsite = again.post(
            "/ui/login",
            data={
                "name": "vic",
                "token": local.tokens["vic"],
                "csrf_token": token,
                "next": "https://evil.example/",
            },
        )
        assert offsite.headers["location"] == "/ui/runs"

    secret = local.out / webauth.SECRET_FILE
    assert (secret.stat().st_mode & 0o777) == 0o600
    value = client.cookies.get(webauth.SESSION_COOKIE)
    _, mac = value.split(".")
    forged = webauth._b64(json.dumps(["ada", "x", int(time.time()), "s"]).encode()) + "." + mac
    with local.client() as other:
        other.cookies.set(webauth.SESSION_COOKIE, forged)
        assert other.get("/ui/runs").status_code == 303  # a changed payload: not signed in
        other.cookies.set(webauth.SESSION_COOKIE, value)
        assert other.get("/ui/runs").status_code == 200  # the cookie itself is the session
    with local.client() as owner:  # signing out ends the session, copies of the cookie too
        owner.cookies.set(webauth.SESSION_COOKIE, value)
        csrf = CSRF.search(owner.get("/ui/runs").text)[1]
        out = owner.post("/ui/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
    with local.client() as copy:
        copy.cookies.set(webauth.SESSION_COOKIE, value)
        assert copy.get("/ui/runs").status_code == 303


def test_sign_in_needs_the_double_submit_token(local: Local) -> None:
    with local.client() as client:
        client.get("/ui/login")
        refused = client.post("/ui/login", data={"name": "alice", "token": local.tokens["alice"]})
        assert refused.status_code == 403
        other = client.post(
            "/ui/login",
            data={"name": "alice", "token": local.tokens["alice"], "csrf_token": "guess"},
        )
        assert other.status_code == 403
        assert webauth.SESSION_COOKIE not in client.cookies


def test_failed_sign_ins_are_throttled_and_audited(local: Local) -> None:
    with local.client() as client:
        token = CSRF.search(client.get("/ui/login").text)[1]
        wrong = local.tokens["bob"][:-3] + "abc"  # the right token id, a wrong secret
        for attempt in range(webauth.MAX_FAILURES_PER_NAME):
            guess = wrong if attempt == 0 else f"guess-{attempt}"  # one Argon2 check is enough
            response = client.post(
                "/ui/login", data={"name": "bob", "token": guess, "csrf_token": token}
            )
            assert response.status_code == 401
        throttled = client.post(
            "/ui/login", data={"name": "bob", "token": local.tokens["bob"], "csrf_token": token}
        )
        assert throttled.status_code == 429  # even the right token, while throttled
        assert "Too many failed sign-ins" in throttled.text
        assert 0 < int(throttled.headers["retry-after"]) <= webauth.THROTTLE_WINDOW + 1
        assert webauth.SESSION_COOKIE not in client.cookies
        # another name from the same address is not throttled by bob's failures
        fine = client.post(
            "/ui/login", data={"name": "ada", "token": local.tokens["ada"], "csrf_token": token}
        )
        assert fine.status_code == 303
    audit = local.audit(lambda log: any(a.get("attempted_user") == "ada" for a in log))
    sign_ins = [a for a in audit if a.get("event") == "sign-in"]
    bob = [a for a in sign_ins if a["attempted_user"] == "bob"]
    assert [a["status"] for a in bob[-6:]] == [401] * 5 + [429]
    assert all(a["outcome"] == "refused" and a["api_user"] is None for a in bob[-6:])
    ada = [a for a in sign_ins if a["attempted_user"] == "ada"][-1]
    assert (ada["api_user"], ada["role"], ada["outcome"]) == ("ada", "admin", "succeeded")
    assert all(local.tokens["bob"] not in json.dumps(a) for a in sign_ins)


def test_the_throttle_counts_per_key_in_a_sliding_window() -> None:
    throttle = webauth.Throttle(window=60)
    limits = {"name:x": 2, "client:1": 3}
    throttle.failed("name:x", "client:1", now=0)
    assert throttle.retry_after(limits, now=1) == 0
    throttle.failed("name:x", "client:1", now=10)
    assert throttle.retry_after(limits, now=11) == 50  # the first failure leaves at 60
    assert throttle.retry_after({"client:1": 3}, now=11) == 0
    assert throttle.retry_after(limits, now=61) == 0
    throttle.clear("name:x")
    assert throttle.retry_after(limits, now=11) == 0


def test_csrf_and_roles_on_every_form(local: Local) -> None:
    with closing(local.sign_in("alice")) as alice, closing(local.sign_in("vic")) as vic:
        csrf_and_roles(local, alice, vic)


def csrf_and_roles(local: Local, alice: httpx.Client, vic: httpx.Client) -> None:
    alice_csrf = CSRF.search(alice.get("/ui/config").text)[1]
    vic_page = vic.get("/ui/config")
    vic_csrf = CSRF.search(vic_page.text)[1]
    assert 'id="run-button"' not in vic_page.text
    assert 'id="download-button"' in vic_page.text
    assert 'id="launch"' not in vic.get("/ui/runs").text
    assert 'id="launch"' in alice.get("/ui/runs").text
    form = {"data.companies.path": "companies.csv", "data.financials.path": "financials.csv"}
    before = sorted(local.out.iterdir())
    for client, token in ((alice, None), (alice, "forged"), (alice, vic_csrf)):
        data = form if token is None else {**form, "csrf_token": token}
        response = client.post("/ui/runs", data=data)
        assert response.status_code == 403, response.text
        assert response.json()["type"] == "urn:wfo:problem:csrf"
    forged = vic.post("/ui/runs", data={**form, "csrf_token": vic_csrf})  # a viewer's own token
    assert forged.status_code == 403
    assert forged.json()["type"] == "urn:wfo:problem:forbidden"
    assert sorted(local.out.iterdir()) == before  # no run folder
    assert sorted(p.name for p in local.data.glob(".wfo-serve-*")) == []
    # every other form too
    for url in ("/ui/logout", "/ui/config/validate", "/ui/config/download", "/ui/users"):
        assert alice.post(url, data={"csrf_token": "x"}).status_code == 403, url
    assert alice.post("/ui/users", data={"csrf_token": alice_csrf}).status_code == 403  # role
    assert alice.get("/ui/users").status_code == 403
    assert alice.get("/ui/audit").status_code == 403
    assert vic.post("/ui/config/validate", data={"csrf_token": vic_csrf}).status_code == 403
    cancel = vic.post("/ui/runs/20991231T000000-api-000000/cancel", data={"csrf_token": vic_csrf})
    assert cancel.status_code == 403
    assert cancel.json()["type"] == "urn:wfo:problem:forbidden"
    missing = alice.post(
        "/ui/runs/20991231T000000-api-000000/cancel", data={"csrf_token": alice_csrf}
    )
    assert missing.status_code == 404
    # the token in a header (the live validation's fetch) works as well as in the form
    checked = alice.post(
        "/ui/config/validate", data=form, headers={webauth.CSRF_HEADER: alice_csrf}
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is True
    audit = local.audit(lambda log: any(a.get("api_user") == "vic" for a in log))
    refused = [a for a in audit if a.get("url") == "/ui/runs" and a["method"] == "POST"]
    assert {(a["api_user"], a["status"]) for a in refused} >= {("alice", 403), ("vic", 403)}


def test_the_configuration_page_is_generated_from_the_model(local: Local) -> None:
    with closing(local.sign_in("alice")) as alice:
        generated_page(local, alice)


def generated_page(local: Local, alice: httpx.Client) -> None:
    page = alice.get("/ui/config")
    assert page.status_code == 200
    html = page.text
    for spec in configform.form_fields():
        assert f'name="{spec.key}"' in html, spec.key
        assert f'data-effective-for="{spec.key}"' in html
        assert f'data-error-for="{spec.key}"' in html
    assert html.count("<details") == len(
        [s for top in configform.form_sections() for s in _all_sections(top)]
    )
    assert "risk-free rate, decimal, -0.1 &lt;= x &lt;= 0.5" in html  # description, escaped
    assert 'placeholder="0.04"' in html  # the default
    assert '<option value="companies.csv">' in html  # the data root's files for paths
    csrf = CSRF.search(html)[1]
    form = {
        "csrf_token": csrf,
        "data.companies.path": "companies.csv",
        "data.financials.path": "financials.csv",
        "valuation.terminal_growth": "0.5x",
    }
    invalid = alice.post("/ui/config/validate", data=form)
    assert invalid.status_code == 200
    assert invalid.json()["valid"] is False
    assert invalid.json()["errors"] == [
        {"field": "valuation.terminal_growth", "message": "'0.5x' is not a number"}
    ]
    form["valuation.terminal_growth"] = "0.03"
    valid = alice.post("/ui/config/validate", data=form).json()
    assert valid["effective"]["valuation.terminal_growth"] == {
        "value": "0.03",
        "source": "this form",
    }
    assert valid["effective"]["valuation.timing"] == {"value": "end_of_year", "source": "default"}
    download = alice.post("/ui/config/download", data=form)
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="parameters.yaml"'
    written = local.data / "from-the-form.yaml"
    written.write_text(download.text)
    assert main(["config", "show", str(written), "--confine", str(local.data)]) == 0
    refused = alice.post("/ui/config/download", data={**form, "security.confine": "/"})
    assert refused.status_code == 422
    assert 'data-error-for="security.confine">' in refused.text


def _all_sections(section: configform.FormSection) -> list[configform.FormSection]:
    return [section, *(s for sub in section.sections for s in _all_sections(sub))]


def test_users_page_adds_with_the_token_shown_once_and_revokes(local: Local) -> None:
    with closing(local.sign_in("ada")) as ada:
        users_page(local, ada)


def users_page(local: Local, ada: httpx.Client) -> None:
    page = ada.get("/ui/users")
    csrf = CSRF.search(page.text)[1]
    added = ada.post("/ui/users", data={"csrf_token": csrf, "name": "carol", "role": "viewer"})
    assert added.status_code == 200
    token = re.search(r'id="new-token">([^<]+)<', added.text)[1]
    assert token.startswith("wfo_")
    assert token not in ada.get("/ui/users").text  # shown once
    assert token not in (local.out / "users.json").read_text()
    carol = local.sign_in("carol", token)
    assert carol.get("/ui/runs").status_code == 200
    carol.close()  # its cookie stays usable after the connection is closed
    bad = ada.post("/ui/users", data={"csrf_token": csrf, "name": "Carol!", "role": "viewer"})
    assert bad.status_code == 422
    assert "is not allowed" in bad.text
    revoked = ada.post("/ui/users/carol/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 200
    assert "Revoked carol (viewer)" in revoked.text
    assert next(u for u in load_users(local.out / "users.json") if u.name == "carol").revoked
    with local.client() as again:
        again.cookies = carol.cookies
        assert again.get("/ui/runs").status_code == 303  # a revoked user's session ends


def test_wfo_audit_and_the_audit_page(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    with local.client() as client:  # a failed sign-in to find
        token = CSRF.search(client.get("/ui/login").text)[1]
        client.post("/ui/login", data={"name": "mallory", "token": "wfo_x", "csrf_token": token})
    local.audit(lambda log: any(a.get("attempted_user") == "mallory" for a in log))
    assert main(["audit", "--output", str(local.out), "--user", "mallory", "--failed"]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert len(lines) == 1
    assert "mallory" in lines[0]
    assert "refused" in lines[0]
    assert "sign-in: POST /ui/login" in lines[0]
    assert "HTTP 401" in lines[0]
    assert "1 of" in printed.err
    assert main(["audit", "--output", str(local.out), "--since", "1h"]) == 0
    assert "ada (admin)" in capsys.readouterr().out
    assert main(["audit", "--output", str(local.out), "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "--output", str(local.out), "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err

    with closing(local.sign_in("ada")) as ada:
        page = ada.get("/ui/audit", params={"user": "mallory", "failed": "1"})
    assert page.status_code == 200
    rows = re.findall(r"<tr class=\"failed\">(.*?)</tr>", page.text, re.S)
    assert len(rows) == 1
    assert "mallory" in rows[0]
    assert "sign-in: POST /ui/login" in rows[0]


# ------------------- the model and the form (after the server started: they run while it warms up)


def model_leaves(model: type[BaseModel], prefix: str = "", stack: tuple = ()) -> set[str]:
    """Every leaf setting of a pydantic model, walked through its Python types (not the JSON
    schema the form is built from): a nested model is a section unless met again inside itself."""
    leaves = set()
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        options = [a for a in typing.get_args(annotation) if a is not type(None)] if union else []
        options = options or [annotation]  # a list or mapping of models is one value
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(options) == 1 and len(models) == 1 and models[0] not in stack:
            leaves |= model_leaves(models[0], key + ".", (*stack, models[0]))
        else:
            leaves.add(key)
    return leaves


def test_every_leaf_field_of_config_is_in_the_form() -> None:
    keys = [f.key for f in configform.form_fields()]
    assert len(keys) == len(set(keys))
    assert set(keys) == model_leaves(Config, stack=(Config,))
    sections = {s.key: s for s in configform.form_sections()}
    assert list(sections) == list(Config.model_fields)  # folded as in the model, in its order
    wacc = next(s for s in sections["valuation"].sections if s.key == "valuation.wacc")
    risk_free = next(f for f in wacc.fields if f.key == "valuation.wacc.risk_free")
    assert risk_free.kind == "number"
    assert risk_free.default == 0.04
    assert risk_free.unit == "decimal (0.09 = 9 %)"
    assert "risk-free rate" in risk_free.description
    by_key = {f.key: f for f in configform.form_fields()}
    assert by_key["valuation.terminal"].options == ("gordon", "exit_multiple")
    assert by_key["valuation.methods"].kind == "choices"
    assert by_key["valuation.scenarios"].kind == "yaml"
    assert by_key["data.companies.fallback"].kind == "yaml"  # a table source inside itself
    assert by_key["valuation.discount_rate"].nullable


def test_a_form_becomes_a_document_with_field_errors(tmp_path: Path) -> None:
    data = sample_data(tmp_path)
    form = {
        "data.companies.path": ["companies.csv"],
        "data.financials.path": ["financials.csv"],
        "valuation.terminal_growth": ["0.025"],
        "valuation.discount_rate": ["null"],
        "valuation.methods": ["", "dcf", "asset"],
        "valuation.comparables.multiples": ["", "ev_ebitda"],  # the default: not written
        "valuation.sensitivity.enabled": ["false"],
        "valuation.blend": ["{dcf: 0.6, asset: 0.4}"],
        "report.title": ["A <b>title</b>"],
        "valuation.wacc.risk_free": [""],  # empty: the default
        "valuation.monte_carlo.cash_flow_scale": ["null"],  # an optional model switched off
        "valuation.monte_carlo.cash_flow_scale.dist": ["lognorm"],  # ignored: it is off
    }
    document, errors = configform.document_from_form(form)
    assert errors == []
    assert document == {
        "data": {"companies": {"path": "companies.csv"}, "financials": {"path": "financials.csv"}},
        "valuation": {
            "discount_rate": None,
            "methods": ["dcf", "asset"],
            "terminal_growth": 0.025,
            "blend": {"dcf": 0.6, "asset": 0.4},
            "sensitivity": {"enabled": False},
            "monte_carlo": {"cash_flow_scale": None},
        },
        "report": {"title": "A <b>title</b>"},
    }
    check = configform.check_form(form, data)
    assert check.valid, check.errors
    assert check.effective["valuation.terminal_growth"] == {"value": 0.025, "source": "this form"}
    assert check.effective["valuation.wacc.risk_free"] == {"value": 0.04, "source": "default"}
    assert check.effective["valuation.monte_carlo.cash_flow_scale.dist"] == {
        "value": None,
        "source": "this form",
    }
    unsettable = [
        s.key for top in configform.form_sections() for s in top.walk_sections() if s.can_unset
    ]
    assert unsettable == [
        "valuation.monte_carlo.discount_rate_shift",
        "valuation.monte_carlo.terminal_growth_shift",
        "valuation.monte_carlo.cash_flow_scale",
    ]
    assert check.effective["data.companies.path"]["value"] == "<data root>/companies.csv"
    assert str(data) not in json.dumps(check.effective)
    assert check.effective["output.root"]["source"] == "server (confinement)"
    assert "terminal_growth: 0.025" in configform.to_yaml(check.document)

    bad = {
        **form,
        "valuation.terminal_growth": ["abc"],
        "valuation.drivers.years": ["2.5"],
        "valuation.timing": ["sometimes"],
    }
    assert {e.field for e in configform.check_form(bad, data).errors} == {
        "valuation.terminal_growth",
        "valuation.drivers.years",
        "valuation.timing",
    }
    beyond = configform.check_form({**form, "valuation.wacc.risk_free": ["3"]}, data)
    assert [e.field for e in beyond.errors] == ["valuation.wacc.risk_free"]
    assert "less than or equal to 0.5" in beyond.errors[0].message
    outside = configform.check_form({**form, "data.peers.path": ["../../etc/passwd"]}, data)
    assert [e.field for e in outside.errors] == ["data.peers.path"]
    assert str(data) not in outside.errors[0].message
    assert sorted(p.name for p in data.glob(".wfo-serve-*")) == []  # nothing left behind


# ------------------------------------------------------------- Chromium against `wfo serve` (TLS)


@dataclass
class Served:
    url: str
    out: Path
    data: Path
    tokens: dict[str, str]
    tls: ssl.SSLContext


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("ui-served")
    data, out = sample_data(root), root / "out"
    tokens = {name: add_user(out / "users.json", name, role) for name, role in USERS.items()}
    cert, key = make_certificate(root)
    port = free_port()
    wfo = Path(sys.executable).parent / "wfo"
    command = [str(wfo), "serve", "--port", str(port), "--output", str(out)]
    command += ["--data-root", str(data), "--workers", "1", "--queue", "2"]
    command += ["--certfile", str(cert), "--keyfile", str(key)]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    tls = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (root / "server.log").read_text()
            try:  # listening; its worker warms up while the browser signs in and fills the form
                httpx.get(f"{url}/healthz", verify=tls, timeout=5)
                break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not listen in 120 s"
            time.sleep(0.3)
        yield Served(url, out, data, tokens, tls)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    text = (root / "server.log").read_text()
    assert "Traceback" not in text, text


def browser_sign_in(context, served: Served, name: str):
    page = context.new_page()
    page.goto(f"{served.url}/ui/login")
    page.fill("#name", name)
    page.fill("#token", served.tokens[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/runs")
    return page


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Another site: a page that posts a form to the wfo server as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/ui/runs">'
            '<input name="report.title" value="posted from elsewhere"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.browser
@pytest.mark.e2e
def test_a_whole_session_in_chromium(served: Served, chromium: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        context = browser.new_context(ignore_https_errors=True)
        errors: list[str] = []
        page = browser_sign_in(context, served, "alice")
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        session = next(c for c in context.cookies() if c["name"] == webauth.SESSION_COOKIE)
        assert session["httpOnly"]
        assert session["secure"]  # served over TLS
        assert session["sameSite"] == "Strict"

        # the configuration form: fill it, watch it validate live, launch
        page.click("#launch")
        page.wait_for_url("**/ui/config")
        page.fill('[name="data.companies.path"]', "companies.csv")
        page.fill('[name="data.financials.path"]', "financials.csv")
        page.fill('[name="data.peers.path"]', "peers.csv")
        page.fill('[name="data.balance_sheet.path"]', "balance_sheet.csv")
        page.click('details[data-section="valuation"] > summary')
        page.fill('[name="valuation.terminal_growth"]', "0.5x")
        error = page.locator('[data-error-for="valuation.terminal_growth"]')
        expect(error).to_have_text("'0.5x' is not a number", timeout=10_000)
        page.fill('[name="valuation.terminal_growth"]', "0.021")
        expect(error).to_have_text("", timeout=10_000)
        page.click('details[data-section="valuation.monte_carlo"] > summary')
        page.select_option('[name="valuation.monte_carlo.enabled"]', "false")
        page.click('details[data-section="valuation.sensitivity"] > summary')
        page.select_option('[name="valuation.sensitivity.enabled"]', "false")
        page.click('details[data-section="report"] > summary')
        page.fill('[name="report.title"]', HOSTILE)
        expect(page.locator("#check-state")).to_contain_text("valid", timeout=10_000)
        expect(page.locator('[data-source-for="valuation.terminal_growth"]')).to_have_text(
            "this form"
        )
        expect(page.locator('[data-effective-for="valuation.terminal_growth"]')).to_have_text(
            "0.021"
        )
        expect(page.locator('[data-source-for="valuation.wacc.risk_free"]')).to_have_text("default")
        page.click("#run-button")
        page.wait_for_url(re.compile(r".*/ui/runs/[^/]+$"))
        run_id = page.url.rsplit("/", 1)[1]

        # the run page follows the run until it ends (its script reloads the page)
        status = page.locator("#run-status")
        expect(status).to_have_text("succeeded", timeout=240_000)  # a loaded machine
        expect(page.locator("#run-title")).to_have_text(HOSTILE)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#bold").count() == 0
        assert page.locator("#steps tbody tr").count() >= 4
        assert page.locator("#quality tbody tr").count() == 4

        # its report, in a sandboxed frame
        page.click("#report-link")
        page.wait_for_url(f"**/ui/runs/{run_id}/report")
        frame_element = page.locator("iframe#report")
        assert frame_element.get_attribute("sandbox") == "allow-scripts"
        frame = page.frame_locator("iframe#report")
        expect(frame.locator("body")).to_contain_text("Data quality", timeout=30_000)
        expect(frame.locator(".plotly-graph-div").first).to_be_visible(timeout=30_000)

        # the runs list shows the title as text
        page.goto(f"{served.url}/ui/runs")
        row = page.locator(f'tr[data-run="{run_id}"]')
        expect(row.locator(".title")).to_have_text(HOSTILE)
        expect(row.locator(".status")).to_have_text("succeeded")
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#bold, #img").count() == 0

        # its result tables, the comparison (with itself: every table identical), the history
        table = context.request.get(f"{served.url}/ui/runs/{run_id}/results/valuations.csv")
        assert table.status == 200
        on_disk = pl.read_parquet(served.out / run_id / "results" / "valuations.parquet")
        assert pl.read_csv(io.BytesIO(table.body())).shape == on_disk.shape
        page.goto(f"{served.url}/ui/compare?a={run_id}&b={run_id}")
        statuses = page.locator("#tables tbody td:nth-child(2)").all_text_contents()
        assert "valuations" in page.locator("#tables").inner_text()
        assert set(statuses) == {"identical"}
        page.goto(f"{served.url}/ui/history")
        expect(page.locator("#history")).to_contain_text(run_id)
        assert errors == []

        # a cross-site form post (another origin, the user signed in here) is refused
        _Hostile.target = served.url
        hostile = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
        threading.Thread(target=hostile.serve_forever, daemon=True).start()
        try:
            before = sorted(p.name for p in served.out.iterdir())
            attack = context.new_page()
            attack.goto(f"http://localhost:{hostile.server_address[1]}/")
            attack.wait_for_url(re.compile(r".*/ui/login.*"), timeout=10_000)  # no cookie sent
            assert sorted(p.name for p in served.out.iterdir()) == before
        finally:
            hostile.shutdown()
            hostile.server_close()

        # a viewer sees no launch button; a forged POST from their session is refused
        viewer = browser.new_context(ignore_https_errors=True)
        vic = browser_sign_in(viewer, served, "vic")
        assert vic.locator("#launch").count() == 0
        vic.goto(f"{served.url}/ui/config")
        assert vic.locator("#run-button").count() == 0
        assert vic.locator("#download-button").count() == 1
        forged = vic.evaluate(
            """async () => {
                const form = document.getElementById("config-form");
                const body = new URLSearchParams(new FormData(form));
                const r = await fetch("/ui/runs", {method: "POST", body});
                const bare = await fetch("/ui/runs", {method: "POST",
                    body: new URLSearchParams({"report.title": "no token"})});
                return [r.status, bare.status];
            }"""
        )
        assert forged == [403, 403]
        vic.goto(f"{served.url}/ui/runs/{run_id}")
        expect(vic.locator("#run-title")).to_have_text(HOSTILE)
        browser.close()

    audit = read_audit_until(served.out, lambda log: any(a.get("event") == "launch" for a in log))
    launched = [a for a in audit if a.get("event") == "launch"]
    assert [(a["api_user"], a["status"], a["run_id"]) for a in launched][0] == (
        "alice",
        303,
        run_id,
    )
    reads = [a for a in audit if a.get("event") == "read" and a.get("run_id") == run_id]
    assert ("alice", "report") in {(a["api_user"], a["what"]) for a in reads}
    refused = [a for a in audit if a.get("url") == "/ui/runs" and a.get("status") == 403]
    assert "vic" in {a["api_user"] for a in refused}
    manifest = json.loads((served.out / run_id / "manifest.json").read_text())
    assert manifest["owner"] == "alice"
    assert manifest["config"]["report"]["title"] == HOSTILE
    assert manifest["config"]["valuation"]["terminal_growth"] == 0.021


def test_audit_entries_of_every_kind(tmp_path: Path) -> None:
    from wfo_kit.audit import filter_entries, format_entries, parse_since, read_audit
    from wfo_kit.runs import append_audit

    path = tmp_path / "audit.jsonl"
    append_audit(path, command="run", run_id="r1", params_file="p.yaml", outcome="failed")
    append_audit(
        path, command="users", arguments=["users", "add", "x"], outcome="succeeded", exit_code=0
    )
    append_audit(
        path,
        command="serve",
        event="sign-in",
        method="POST",
        url="/ui/login",
        api_user=None,
        attempted_user="eve",
        client="10.0.0.9",
        status=401,
        outcome="refused",
    )
    with path.open("a") as handle:
        handle.write("{not json\n")
    entries, bad = read_audit(path)
    assert bad == 1
    assert [e.action for e in entries] == ["wfo run", "wfo users add x", "sign-in: POST /ui/login"]
    assert [e.who for e in filter_entries(entries, failed=True)][-1] == "eve"
    assert len(filter_entries(entries, failed=True)) == 2  # the failed run, the refused sign-in
    assert filter_entries(entries, user="eve") == entries[2:]
    assert filter_entries(entries, since=parse_since("2999-01-01")) == []
    assert len(filter_entries(entries, since=parse_since("5m"))) == 3
    line = format_entries(entries[2:])[0]
    assert line.endswith("refused    sign-in: POST /ui/login  HTTP 401  10.0.0.9")
    assert read_audit(tmp_path / "none.jsonl") == ([], 0)


def test_a_session_cookie_is_signed_and_expires() -> None:
    secret, other = b"k" * 32, b"o" * 32
    session = webauth.Session("alice", "0123456789ab", int(time.time()), "sid")
    cookie = webauth.sign_session(secret, session)
    assert webauth.read_session(secret, cookie) == session
    assert webauth.read_session(other, cookie) is None  # another server's secret
    assert webauth.read_session(secret, cookie + "x") is None
    assert webauth.read_session(secret, "garbage") is None
    late = session.issued + webauth.SESSION_SECONDS + 1
    assert webauth.read_session(secret, cookie, now=late) is None
    assert webauth.csrf_token(secret, session) != webauth.csrf_token(
        secret, webauth.Session("alice", "0123456789ab", session.issued, "another")
    )


def test_pages_of_broken_and_older_runs(local: Local) -> None:
    """A run folder whose manifest cannot be read, and one from an older version (fewer keys):
    listed and shown, never a 500."""
    broken, older = "20200101T000000-broken-000001", "20200101T000000-older-000002"
    (local.out / broken).mkdir()
    (local.out / broken / "manifest.json").write_text("{not json")
    (local.out / older).mkdir()
    (local.out / older / "manifest.json").write_text(
        json.dumps(
            {
                "run_id": older,
                "status": "failed",
                "started": "2020-01-01T00:00:00+00:00",
                "steps": [{"step": "load"}],
                "quality": [{"table": "companies"}],
                "error": {"message": "<i>it broke</i>"},
            }
        )
    )
    with closing(local.sign_in("vic")) as vic:
        listing = vic.get("/ui/runs")
        assert listing.status_code == 200
        assert f'data-run="{broken}"' in listing.text
        assert "unreadable" in listing.text
        for run_id in (broken, older):
            page = vic.get(f"/ui/runs/{run_id}")
            assert page.status_code == 200, page.text
        assert "&lt;i&gt;it broke&lt;/i&gt;" in vic.get(f"/ui/runs/{older}").text
        report = vic.get(f"/ui/runs/{older}/report")
        assert report.status_code == 200
        assert "its report is published when it ends" in report.text
        assert vic.get("/ui/history").status_code == 200
        assert vic.get("/ui/runs/no-such-run").status_code == 404
