"""The web pages of ``wfo serve`` (``/ui/...``): server-rendered Jinja2, a little static JavaScript.

Pages: sign-in, runs (filter by status, owner, text), a run (live status, quality, step timings,
links), its report (in a sandboxed frame), the comparison of two runs, the history dashboard,
the configuration form (generated from the model: :mod:`wfo_kit.serve.configform`), users and
the audit log (admins). Like the API, the pages call the library and the API's own route
functions; they hold no run logic.

Security: every page is sent with a strict Content-Security-Policy (scripts and styles only from
``/ui/static``, no inline script or style, no frames but the report's, no framing by others);
templates autoescape every value; the report is served with a ``sandbox`` policy into a frame
with ``sandbox="allow-scripts"`` (an opaque origin: it reaches neither the page, the cookies nor
the network). Sign-in, sessions, CSRF and throttling: :mod:`wfo_kit.serve.webauth`.
"""

from __future__ import annotations

import functools
import json
import secrets
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from wfo_kit.errors import WfoError
from wfo_kit.serve import configform, webauth
from wfo_kit.serve.auth import can
from wfo_kit.serve.deps import RunId
from wfo_kit.serve.problems import Problem
from wfo_kit.serve.users import ROLES, User

HERE = Path(__file__).parent
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
#: The report in its frame: the API's sandbox policy, framed by our own pages only.
FRAMED_REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
)
#: What a page needs beyond the API's permissions (auth.PERMISSIONS): admin-only pages.
PAGE_ROLES: dict[str, frozenset[str]] = {
    "manage_users": frozenset({"admin"}),
    "read_audit": frozenset({"admin"}),
}
ACTIVE = ("queued", "starting", "running")

router = APIRouter(prefix="/ui", include_in_schema=False)


def allowed(user: User, permission: str) -> bool:
    """The API's permission table, plus the admin-only pages."""
    if permission in PAGE_ROLES:
        return user.role in PAGE_ROLES[permission]
    return can(user, permission)


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text in HTML, whatever it holds
        # A key an older or broken manifest lacks shows as nothing rather than failing the page.
        undefined=jinja2.ChainableUndefined,
    )
    env.globals["display"] = configform.display
    return env


class _SignInFirst(Exception):  # noqa: N818 - a redirect, not an error
    pass


# ----------------------------------------------------------------------------- session plumbing


def _secret(request: Request) -> bytes:
    state = request.app.state
    if getattr(state, "web_secret", None) is None:
        state.web_secret = webauth.server_secret(state.settings.output_root)
    return state.web_secret


def _signed_in(request: Request) -> tuple[User, webauth.Session] | None:
    secret = _secret(request)
    session = webauth.read_session(secret, request.cookies.get(webauth.SESSION_COOKIE))
    if session is None or request.app.state.web_signed_out.ended(session):
        return None
    user = webauth.session_user(request.app.state.verifier, session)
    if user is None:
        return None
    request.state.user = user  # for the audit log
    return user, session


def web_user(request: Request) -> tuple[User, webauth.Session]:
    """The signed-in user (else a redirect to the sign-in page)."""
    found = _signed_in(request)
    if found is None:
        raise _SignInFirst
    return found


WebUser = Annotated[tuple[User, webauth.Session], Depends(web_user)]


def _forbidden(user: User, what: str) -> Problem:
    return Problem(
        403,
        "forbidden",
        "Not allowed for this role",
        f"the {user.role} role may not {what}",
        hint="ask an admin for a role that may",
    )


async def _form(request: Request) -> dict[str, list[str]]:
    """A URL-encoded form body (the pages post nothing else)."""
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"a form is sent as application/x-www-form-urlencoded, not {media or 'nothing'!r}",
        )
    body = (await request.body()).decode("utf-8", errors="replace")
    return urllib.parse.parse_qs(body, keep_blank_values=True, max_num_fields=5000)


async def checked_form(
    request: Request, signed: tuple[User, webauth.Session]
) -> dict[str, list[str]]:
    """The form of a signed-in POST, if it carries the session's CSRF token (else 403)."""
    form = await _form(request)
    expected = webauth.csrf_token(_secret(request), signed[1])
    given = request.headers.get(webauth.CSRF_HEADER) or (form.get(webauth.CSRF_FIELD) or [""])[-1]
    if not webauth.same(given, expected):
        raise Problem(
            403,
            "csrf",
            "Missing or wrong CSRF token",
            "this form was not sent from a page of this server (or the session changed)",
            hint="reload the page and send the form again",
        )
    return form


def page(
    request: Request,
    template: str,
    *,
    signed: tuple[User, webauth.Session] | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with the strict CSP; ``signed`` gives the navigation and the CSRF token."""
    user, session = signed if signed else (None, None)
    csrf = webauth.csrf_token(_secret(request), session) if session else None
    html = (
        _environment()
        .get_template(template)
        .render(user=user, csrf=csrf, allowed=allowed, request_path=request.url.path, **context)
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})


def _audit_read(request: Request, user: User, run_id: str | None, what: str) -> None:
    """A report, a result table or a log read through the pages: a line in the audit log."""
    from wfo_kit.runs import append_audit

    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    append_audit(
        settings.output_root / "audit.jsonl",
        command="serve",
        event="read",
        method="GET",
        url=request.url.path,
        api_user=user.name,
        role=user.role,
        client=client,
        status=200,
        outcome="succeeded",
        run_id=run_id,
        what=what,
    )


# ------------------------------------------------------------------------------------ sign-in


def _next_page(target: str | None) -> str:
    """Where to go after signing in: a page of this server only (never another site)."""
    target = target or ""
    if target.startswith("/ui/") and not target.startswith("/ui/login") and "\\" not in target:
        return target
    return "/ui/runs"


@router.get("/login")
def login_form(request: Request, next: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        signed=None,
        login_csrf=token,
        error=None,
        name="",
        next_page=_next_page(next),
    )
    _set_cookie(request, response, webauth.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.tls,
    )


def _field(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[-1]


def _login_again(
    request: Request, form: dict[str, list[str]], *, status: int, error: str
) -> HTMLResponse:
    """The sign-in page once more, with why the last try did not sign in."""
    return page(
        request,
        "login.html",
        signed=None,
        status=status,
        login_csrf=request.cookies.get(webauth.LOGIN_CSRF_COOKIE, ""),
        error=error,
        name=_field(form, "name").strip()[:64],
        next_page=_next_page(_field(form, "next")),
    )


def _signed_response(request: Request, user: User, target: str) -> Response:
    """Where the user goes once signed in, carrying a new session (never an old one's id)."""
    response = RedirectResponse(target, status_code=303)
    cookie = webauth.sign_session(_secret(request), webauth.new_session(user))
    _set_cookie(request, response, webauth.SESSION_COOKIE, cookie, max_age=webauth.SESSION_SECONDS)
    _set_cookie(request, response, webauth.LOGIN_CSRF_COOKIE, "", max_age=0)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with a user name and that user's API token (audited, throttled)."""
    form = await _form(request)
    name = _field(form, "name").strip()[:64]
    request.state.audit = {"event": "sign-in", "attempted_user": name}
    if not webauth.same(
        _field(form, webauth.CSRF_FIELD), request.cookies.get(webauth.LOGIN_CSRF_COOKIE)
    ):
        raise Problem(
            403,
            "csrf",
            "Missing or wrong CSRF token",
            "the sign-in form was not sent from this server's sign-in page",
            hint="open the sign-in page and try again",
        )
    client = request.client.host if request.client else "?"
    throttle: webauth.Throttle = request.app.state.web_throttle
    limits = {
        f"name:{name}": webauth.MAX_FAILURES_PER_NAME,
        f"client:{client}": webauth.MAX_FAILURES_PER_CLIENT,
    }
    wait = throttle.retry_after(limits)
    if wait:  # refused without checking the token: guessing gets no faster than the limit
        error = (
            f"Too many failed sign-ins for this name or from this address: try again in {wait} s."
        )
        response = _login_again(request, form, status=429, error=error)
        response.headers["Retry-After"] = str(wait)
        return response
    verifier = request.app.state.verifier
    user = await run_in_threadpool(webauth.sign_in, verifier, name, _field(form, "token"))
    if user is None:
        throttle.failed(*limits)
        _count_failed_sign_in(request)
        error = "That name and token do not match an active user."
        return _login_again(request, form, status=401, error=error)
    throttle.clear(f"name:{name}")
    request.state.user = user
    return _signed_response(request, user, _next_page(_field(form, "next")))


def _count_failed_sign_in(request: Request) -> None:
    """A failed web sign-in in ``GET /metrics`` (reason ``web_login``), when metrics are on."""
    try:
        from wfo_kit.serve.metrics import count_failed_sign_in
    except ImportError:  # no prometheus_client (the ops extra): no /metrics to count for
        return
    count_failed_sign_in("web_login")
    request.state.failed_sign_in_counted = True  # CountRefusals: not again as a bare 401


@router.post("/logout")
async def logout(request: Request, signed: WebUser) -> Response:
    await checked_form(request, signed)
    request.state.audit = {"event": "sign-out"}
    await run_in_threadpool(request.app.state.web_signed_out.end, signed[1])
    response = RedirectResponse("/ui/login", status_code=303)
    _set_cookie(request, response, webauth.SESSION_COOKIE, "", max_age=0)
    return response


# ----------------------------------------------------------------------------------------- runs


def _manifest(folder: str | Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _title(manifest: dict[str, Any]) -> str | None:
    config = manifest.get("config")
    report = config.get("report") if isinstance(config, dict) else None
    return report.get("title") if isinstance(report, dict) else None


def run_rows(request: Request, *, status: str, owner: str, text: str) -> list[dict[str, Any]]:
    """The runs list as ``GET /runs`` has it: waiting runs first (from every server sharing the
    output folder), then the others newest first."""
    from wfo_kit.serve.index import LIFECYCLE, folder_of

    root = request.app.state.settings.output_root
    rows: list[dict[str, Any]] = []
    for row in request.app.state.index.rows():
        folders = (folder_of(root, row["run_id"], kind) for kind in reversed(LIFECYCLE))
        manifest = next((m for m in map(_manifest, folders) if m), {})
        headline = manifest.get("headline") or {}
        rows.append(
            {
                **row,
                "title": _title(manifest),
                "headline": headline.get("median_blended_value_per_share"),
            }
        )
    needle = text.strip().lower()
    return [
        r
        for r in rows
        if (not status or r["status"] == status)
        and (not owner or r.get("owner") == owner)
        and (
            not needle
            or needle in " ".join(str(r.get(k) or "") for k in ("run_id", "title", "owner")).lower()
        )
    ]


@router.get("/runs")
def runs_page(
    request: Request, signed: WebUser, status: str = "", owner: str = "", q: str = ""
) -> HTMLResponse:
    rows = run_rows(request, status=status, owner=owner, text=q)
    return page(
        request,
        "runs.html",
        signed=signed,
        rows=rows[:500],
        total=len(rows),
        status_filter=status,
        owner=owner,
        q=q,
        statuses=("queued", "running", "succeeded", "failed", "interrupted", "incomplete"),
    )


def _detail(request: Request, run_id: str) -> Any:
    from wfo_kit.serve.runs import _detail as detail

    return detail(request.app.state.index, run_id)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: RunId, signed: WebUser) -> HTMLResponse:
    detail = _detail(request, run_id)
    config = detail.config or {}
    title = (config.get("report") or {}).get("title")
    timings = sorted((detail.timings_seconds or {}).items())
    return page(
        request,
        "run.html",
        signed=signed,
        run=detail,
        title=title,
        timings=timings,
        active=detail.status in ACTIVE,
    )


@router.get("/runs/{run_id}/status")
def run_status(request: Request, run_id: RunId) -> JSONResponse:
    """The run's status for the run page's polling script."""
    if _signed_in(request) is None:
        raise Problem(401, "unauthenticated", "Sign in first", "this session has ended")
    detail = _detail(request, run_id)
    return JSONResponse({"run_id": run_id, "status": detail.status})


@router.get("/runs/{run_id}/report")
def report_page(request: Request, run_id: RunId, signed: WebUser) -> HTMLResponse:
    detail = _detail(request, run_id)
    ready = (request.app.state.settings.output_root / run_id / "report.html").is_file()
    return page(request, "report.html", signed=signed, run=detail, ready=ready)


@router.get("/runs/{run_id}/report.html")
def report_file(request: Request, run_id: RunId, signed: WebUser) -> Response:
    """The report itself, for the sandboxed frame of the report page (and to download)."""
    from wfo_kit.serve.runs import get_report

    response = get_report(run_id, signed[0], request.app.state.settings, request.app.state.index)
    response.headers["Content-Security-Policy"] = FRAMED_REPORT_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    _audit_read(request, signed[0], run_id, "report")
    return response


@router.get("/runs/{run_id}/log")
def log_file(request: Request, run_id: RunId, signed: WebUser) -> Response:
    from wfo_kit.serve.runs import get_log

    response = get_log(run_id, signed[0], request.app.state.settings)
    _audit_read(request, signed[0], run_id, "log")
    return response


@router.get("/runs/{run_id}/results/{name}")
def result_file(request: Request, run_id: RunId, name: str, signed: WebUser) -> Response:
    from wfo_kit.serve.results import _NAME, get_result

    if not _NAME.match(name):
        raise Problem(
            404,
            "table-not-found",
            "No such result table",
            "a result table is named TABLE.csv, TABLE.parquet or TABLE.json",
            field="name",
        )
    response = get_result(run_id, name, signed[0], request.app.state.settings)
    response.headers["Content-Disposition"] = f'attachment; filename="{run_id}-{name}"'
    _audit_read(request, signed[0], run_id, f"results/{name}")
    return response


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: RunId, signed: WebUser) -> Response:
    from wfo_kit.serve.runs import cancel_run

    await checked_form(request, signed)
    user = signed[0]
    if not allowed(user, "cancel_own"):
        raise _forbidden(user, "cancel runs")
    queue, index = request.app.state.queue, request.app.state.index
    await run_in_threadpool(cancel_run, request, run_id, user, queue, index)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


# ----------------------------------------------------------------------------- compare, history


def _run_ids(request: Request) -> list[str]:
    from wfo_kit.history import run_history

    history = run_history(request.app.state.settings.output_root)
    return history.filter(history["status"] == "succeeded")["run_id"].to_list()


@router.get("/compare")
def compare_page(request: Request, signed: WebUser, a: str = "", b: str = "") -> HTMLResponse:
    from wfo_kit.history import compare_results, run_diff

    root = request.app.state.settings.output_root
    choices = _run_ids(request)
    context: dict[str, Any] = {"a": a, "b": b, "choices": choices, "tables": None, "error": None}
    if a and b:
        if a not in choices or b not in choices:
            context["error"] = "Choose two finished runs from the lists."
        else:
            context["tables"] = compare_results(root / a, root / b).to_dicts()
            diff = run_diff(root, a, b)
            context["parameters"] = diff["parameters"].to_dicts()
            context["values"] = diff["values"].head(200).to_dicts()
    return page(request, "compare.html", signed=signed, **context)


@router.get("/history")
def history_page(request: Request, signed: WebUser) -> HTMLResponse:
    import polars as pl

    from wfo_kit.history import run_history, step_durations

    root = request.app.state.settings.output_root
    history = run_history(root)
    by_status = history.group_by("status").len().sort("len", descending=True).to_dicts()
    steps = (
        step_durations(root)
        .group_by("step")
        .agg(
            pl.len().alias("runs"),
            pl.col("seconds").median().alias("median"),
            pl.col("seconds").max().alias("max"),
        )
        .sort("median", descending=True)
        .to_dicts()
    )
    return page(
        request,
        "history.html",
        signed=signed,
        runs=history.head(200).to_dicts(),
        total=history.height,
        by_status=by_status,
        steps=steps,
        report=(root / "history.html").is_file(),
    )


@router.get("/history/report.html")
def history_report(request: Request, signed: WebUser) -> Response:
    from fastapi.responses import FileResponse

    path = request.app.state.settings.output_root / "history.html"
    if not path.is_file():
        raise Problem(
            404,
            "no-history-report",
            "No history report",
            "no history report has been published on this server",
            hint="`wfo runs report --output OUTPUT` publishes one",
        )
    _audit_read(request, signed[0], None, "history report")
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": FRAMED_REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


# ------------------------------------------------------------------------------ configuration


def _data_files(data_root: Path) -> list[str]:
    suffixes = {".csv", ".parquet", ".db", ".duckdb", ".sqlite", ".yaml", ".yml", ".json"}
    return sorted(
        p.name
        for p in data_root.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def _config_page(
    request: Request,
    signed: tuple[User, webauth.Session],
    *,
    form: dict[str, list[str]],
    check: configform.FormCheck | None,
    status: int = 200,
) -> HTMLResponse:
    settings = request.app.state.settings
    errors: dict[str, list[str]] = {}
    for error in check.errors if check else ():
        errors.setdefault(error.field, []).append(error.message)
    return page(
        request,
        "config.html",
        signed=signed,
        status=status,
        sections=configform.form_sections(),
        form=form,
        errors=errors,
        effective=check.effective if check else {},
        data_files=_data_files(settings.data_root),
    )


@router.get("/config")
async def config_page(request: Request, signed: WebUser) -> HTMLResponse:
    """The configuration form, with the effective value and source of every setting."""
    data_root = request.app.state.settings.data_root
    check = await run_in_threadpool(configform.check_form, {}, data_root)
    return _config_page(request, signed, form={}, check=check)


@router.post("/config/validate")
async def validate_form(request: Request, signed: WebUser) -> JSONResponse:
    """Live validation: the form's field errors, or every field's effective value and source."""
    form = await checked_form(request, signed)
    if not allowed(signed[0], "validate"):
        raise _forbidden(signed[0], "validate")
    data_root = request.app.state.settings.data_root
    check = await run_in_threadpool(configform.check_form, form, data_root)
    return JSONResponse(
        {
            "valid": check.valid,
            "errors": [{"field": e.field, "message": e.message} for e in check.errors],
            "effective": {
                k: {"value": configform.display(v["value"]), "source": v["source"]}
                for k, v in check.effective.items()
            },
        },
    )  # 200 either way: the check itself succeeded (a form's errors are no refused request)


@router.post("/config/download")
async def download(request: Request, signed: WebUser) -> Response:
    """The form as a parameters file (only the settings filled in), once it resolves."""
    form = await checked_form(request, signed)
    data_root = request.app.state.settings.data_root
    check = await run_in_threadpool(configform.check_form, form, data_root)
    if not check.valid:
        return _config_page(request, signed, form=form, check=check, status=422)
    return Response(
        configform.to_yaml(check.document),
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="parameters.yaml"'},
    )


@router.post("/runs")
async def launch(request: Request, signed: WebUser) -> Response:
    """Run the form: resolved and queued exactly as ``POST /runs`` does with a document."""
    import yaml

    from wfo_kit.batch import Job
    from wfo_kit.serve import submissions

    form = await checked_form(request, signed)
    user = signed[0]
    if not allowed(user, "submit"):
        raise _forbidden(user, "submit runs")
    settings, queue = request.app.state.settings, request.app.state.queue
    document, errors = configform.document_from_form(form)
    if errors:
        check = configform.FormCheck(document, tuple(errors))
        return _config_page(request, signed, form=form, check=check, status=422)
    body = yaml.safe_dump(document, sort_keys=False).encode()
    run_id = submissions.new_run_id()
    request.state.audit = {"run_id": run_id, "event": "launch"}

    def accept() -> None:
        with submissions.spooled(settings.data_root, run_id, body, ".yaml", keep=True) as path:
            submissions.resolve(path, settings.data_root)
            job = Job(
                params_file=str(path),
                run_id=run_id,
                output_root=str(settings.output_root),
                confine=str(settings.data_root),
                owner=user.name,
            )
            queue.submit(job)

    try:
        await run_in_threadpool(accept)
    except WfoError as exc:
        check = configform.FormCheck(document, tuple(configform.errors_of(exc)))
        return _config_page(request, signed, form=form, check=check, status=422)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


# ---------------------------------------------------------------------------------- admin pages


def _admin(signed: tuple[User, webauth.Session], permission: str) -> User:
    user = signed[0]
    if not allowed(user, permission):
        raise _forbidden(user, permission.replace("_", " "))
    return user


def _users_page(
    request: Request,
    signed: tuple[User, webauth.Session],
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    from wfo_kit.serve.users import load_users

    users = load_users(request.app.state.verifier.path)
    context = {"new_token": None, "added": None, "error": None, "message": None, **context}
    return page(
        request, "users.html", signed=signed, status=status, users=users, roles=ROLES, **context
    )


@router.get("/users")
def users_page(request: Request, signed: WebUser) -> HTMLResponse:
    _admin(signed, "manage_users")
    return _users_page(request, signed)


@router.post("/users")
async def add_user_page(request: Request, signed: WebUser) -> HTMLResponse:
    """Add a user; the page shows the token once (no file keeps it)."""
    from wfo_kit.serve.users import add_user

    form = await checked_form(request, signed)
    _admin(signed, "manage_users")
    name = (form.get("name") or [""])[-1].strip()
    role = (form.get("role") or [""])[-1].strip()
    request.state.audit = {"event": "user-added", "target_user": name, "target_role": role}
    path = request.app.state.verifier.path
    try:
        token = await run_in_threadpool(add_user, path, name, role)
    except WfoError as exc:
        return _users_page(request, signed, status=422, error=exc.one_line())
    return _users_page(request, signed, new_token=token, added=name)


@router.post("/users/{name}/revoke")
async def revoke_user_page(request: Request, name: str, signed: WebUser) -> HTMLResponse:
    from wfo_kit.serve.users import revoke_user

    await checked_form(request, signed)
    _admin(signed, "manage_users")
    request.state.audit = {"event": "user-revoked", "target_user": name}
    try:
        user = await run_in_threadpool(revoke_user, request.app.state.verifier.path, name)
    except WfoError as exc:
        return _users_page(request, signed, status=422, error=exc.one_line())
    return _users_page(request, signed, message=f"Revoked {user.name} ({user.role}).")


@router.get("/audit")
def audit_page(
    request: Request, signed: WebUser, user: str = "", since: str = "", failed: str = ""
) -> HTMLResponse:
    from wfo_kit.audit import filter_entries, parse_since, read_audit

    _admin(signed, "read_audit")
    error = None
    try:
        start = parse_since(since) if since else None
    except WfoError as exc:
        start, error = None, exc.one_line()
    entries, bad = read_audit(request.app.state.settings.output_root / "audit.jsonl")
    chosen = filter_entries(entries, user=user or None, since=start, failed=bool(failed))
    return page(
        request,
        "audit.html",
        signed=signed,
        entries=list(reversed(chosen))[:1000],
        total=len(chosen),
        bad=bad,
        user_filter=user,
        since=since,
        failed=bool(failed),
        error=error,
    )


# ------------------------------------------------------------------------------------- install


def install(app: FastAPI) -> None:
    """Add the pages to the application: the router, the static files, the sign-in redirect."""
    app.state.web_secret = None
    app.state.web_throttle = webauth.Throttle()
    root = app.state.settings.output_root
    app.state.web_signed_out = webauth.SignedOut(root / webauth.SIGNED_OUT_FILE)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    async def sign_in_first(request: Request, _exc: Exception) -> Response:
        target = urllib.parse.quote(request.url.path)
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)

    app.add_exception_handler(_SignInFirst, sign_in_first)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/runs", status_code=303)
