"""HTTP API sources: an input table read from a web service (``data.<table>.url: https://...``).

:func:`fetch` reads every page of a source (JSON or CSV), once: a network error, a timeout, a 5xx
or a 429 raises the retryable :class:`~wfo_kit.errors.SourceUnavailableError` (a 429's
``Retry-After`` in its details), which the retry policy of the load step (``pipeline.retry``)
retries with backoff; :func:`fetch_retrying` applies that same policy where there is no step
wrapper (``wfo run`` fetches each HTTP source before the run, hashes the response into the run
id and hands the kernel that snapshot). Other 4xx and unreadable bodies are
:class:`~wfo_kit.errors.DataFormatError`.

Confinement (``--confine``, ``wfo serve``): a source's host must be in ``security.allowed_hosts``;
every address it resolves to is checked, and loopback, link-local, private and other
non-public addresses are refused unless listed themselves (an address or a network); the request
then goes to the address checked (not to a second lookup's answer), without a proxy, and
redirects are not followed.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from wfo_kit.errors import ConfigurationError, DataFormatError, SourceUnavailableError

#: A response larger than this is refused: an input table is not a bulk download.
MAX_RESPONSE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    """Every row of an HTTP source as text columns, and the SHA-256 of the response bodies."""

    frame: pl.DataFrame
    sha256: str
    pages: int


def shown(url: str) -> str:
    """A URL safe for messages: no credentials, no query string (it may hold an API key)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# --------------------------------------------------------------------------------------------
# Confinement


def check_host_listed(url: str, allowed: list[str], *, key: str) -> None:
    """The URL's host must be in ``allowed`` (by name or address); no DNS here."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host not in {h.lower() for h in allowed} and not _address_listed(host, allowed):
        msg = f"{key}: host {host!r} is not in security.allowed_hosts"
        hint = "the operator lists hosts with WFO_SECURITY__ALLOWED_HOSTS='[host, ...]'"
        raise ConfigurationError(msg, column=key, hint=hint)


def _address_listed(address: str, allowed: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name
    return False


def check_addresses(
    url: str,
    allowed: list[str],
    *,
    table: str,
    resolve: Callable[[str], list[str]] | None = None,
) -> str:
    """Every address the host resolves to must be public, or listed in ``allowed``; returns the
    address to connect to (the request is pinned to it: a second lookup could answer otherwise)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    check_host_listed(url, allowed, key=f"data.{table}.url")
    addresses = (resolve or _resolve)(host)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_global and not ip.is_multicast:
            continue
        if not _address_listed(str(ip), allowed):
            msg = (
                f"{table}: host {host!r} resolves to {ip}, a non-public address "
                "(loopback, link-local or private), which confinement refuses"
            )
            hint = "list that address or its network in security.allowed_hosts if it is meant"
            raise ConfigurationError(msg, table=table, hint=hint)
    return addresses[0]


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        msg = f"cannot resolve host {host!r}: {exc.strerror or exc}"
        raise SourceUnavailableError(msg) from exc
    return sorted({info[4][0] for info in infos})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def _pinned_handlers(address: str) -> list[urllib.request.BaseHandler]:
    """Handlers that connect to ``address`` (already checked) whatever the host name resolves to
    now, still sending the name (Host header, TLS SNI and certificate check)."""

    class HTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection((address, self.port), self.timeout)

    class HTTPS(http.client.HTTPSConnection):
        def connect(self) -> None:
            sock = socket.create_connection((address, self.port), self.timeout)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

    class PinnedHTTP(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(HTTP, req)

    class PinnedHTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(HTTPS, req, context=ssl.create_default_context())

    # No proxy from the environment: it would connect elsewhere than the address checked.
    return [urllib.request.ProxyHandler({}), PinnedHTTP(), PinnedHTTPS(), _NoRedirect()]


# --------------------------------------------------------------------------------------------
# Fetching


def _expand(text: str, *, table: str) -> str:
    from wfo_kit.io import _expand_env

    try:
        return _expand_env(text)
    except ConfigurationError as exc:
        msg = f"{table}: {exc.message.replace('a SQL url', 'an HTTP source')}"
        raise ConfigurationError(msg, table=table) from None


def _get(source: Any, url: str, *, table: str, pinned: str | None) -> tuple[bytes, Any]:
    headers = {"User-Agent": "wfo_kit", "Accept": "application/json, text/csv"}
    headers |= {name: _expand(value, table=table) for name, value in source.headers.items()}
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(*(_pinned_handlers(pinned) if pinned else []))
    where = shown(url)
    try:
        with opener.open(request, timeout=source.timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
            if len(body) > MAX_RESPONSE_BYTES:
                msg = f"{table}: response of {where} is larger than {MAX_RESPONSE_BYTES} bytes"
                raise DataFormatError(msg, table=table)
            return body, response.headers
    except urllib.error.HTTPError as exc:
        exc.close()  # its response holds the socket
        if exc.code >= 500 or exc.code in (408, 429):
            details = {"status": exc.code, "retry_after": _retry_after(exc.headers)}
            msg = f"{table}: {where} answered HTTP {exc.code} ({exc.reason})"
            raise SourceUnavailableError(
                msg, table=table, hint="retried with backoff per pipeline.retry", details=details
            ) from None
        what = "redirects, which confinement does not follow" if 300 <= exc.code < 400 else ""
        msg = (
            f"{table}: {where} answered HTTP {exc.code} ({exc.reason}){' ' + what if what else ''}"
        )
        raise DataFormatError(msg, table=table, details={"status": exc.code}) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        msg = f"{table}: {where} is unreachable: {reason}"
        raise SourceUnavailableError(
            msg, table=table, hint="retried with backoff per pipeline.retry"
        ) from None


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff of the policy applies


def _rows(body: bytes, source: Any, *, table: str, where: str) -> pl.DataFrame:
    try:
        if source.format == "csv":
            if not body.strip():
                return pl.DataFrame()
            return pl.read_csv(io.BytesIO(body), infer_schema=False)
        payload = json.loads(body)
        rows = payload.get(source.records) if source.records else payload
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            key = f"key {source.records!r}" if source.records else "the body"
            msg = f"{table}: {where}: {key} is not a list of objects"
            raise DataFormatError(msg, table=table, hint="set `records` to the key of the rows")
        frame = pl.DataFrame(rows, infer_schema_length=None)
        # As from a CSV: every value as text, typed by the contract in io.conform.
        return frame.select(pl.col(c).cast(pl.String) for c in frame.columns)
    except DataFormatError:
        raise
    except Exception as exc:  # a body that is not JSON / CSV, a nested value
        msg = f"{table}: {where}: cannot read the {source.format.upper()} response: {exc}"
        raise DataFormatError(msg.splitlines()[0], table=table) from exc


def _next_link(headers: Any) -> str | None:
    for part in (headers.get("Link") or "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().strip("<>")
    return None


def _with_page(url: str, param: str, number: int) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != param]
    query.append((param, str(number)))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def fetch(
    source: Any,
    *,
    table: str,
    security: Any = None,
    resolve: Callable[[str], list[str]] | None = None,
) -> Fetched:
    """Every page of an HTTP source, one attempt per page (see the module's note on retries).

    ``resolve`` (host -> addresses) replaces the system's DNS lookup in confinement (tests)."""
    confined = security is not None and security.confine is not None
    url = _expand(source.url, table=table)
    paging = source.pagination
    digest, frames, pages = hashlib.sha256(), [], 0
    page_number = paging.first_page if paging else 0
    target: str | None = _with_page(url, paging.page_param, page_number) if paging and \
        paging.style == "page" else url  # fmt: skip
    while target is not None:
        pinned = None
        if confined:
            allowed = list(security.allowed_hosts)
            pinned = check_addresses(target, allowed, table=table, resolve=resolve)
        body, headers = _get(source, target, table=table, pinned=pinned)
        digest.update(hashlib.sha256(body).digest())
        frame = _rows(body, source, table=table, where=shown(target))
        pages += 1
        if paging is None:
            frames.append(frame)
            break
        if paging.style == "page" and frame.height == 0:
            break
        frames.append(frame)
        if pages >= paging.max_pages:
            msg = f"{table}: {shown(url)} has more than pagination.max_pages={paging.max_pages}"
            raise DataFormatError(msg, table=table, hint="raise pagination.max_pages")
        if paging.style == "page":
            page_number += 1
            target = _with_page(url, paging.page_param, page_number)
        else:
            link = _next_link(headers)
            target = urllib.parse.urljoin(target, link) if link else None
    combined = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
    return Fetched(combined, digest.hexdigest(), pages)


def fetch_retrying(
    source: Any,
    *,
    table: str,
    policy: Any,
    security: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """:func:`fetch` under a retry policy (``pipeline.retry``), honouring a 429's Retry-After
    (capped by the policy's ``max_backoff_seconds``)."""
    attempt = 1
    while True:
        try:
            return fetch(source, table=table, security=security)
        except SourceUnavailableError as exc:
            if attempt >= policy.attempts:
                exc.message = f"{exc.message} (gave up after {attempt} attempts)"
                exc.args = (exc.message, *exc.args[1:])
                raise
            sleep(retry_wait(policy, attempt, exc))
            attempt += 1


def retry_wait(policy: Any, attempt: int, error: SourceUnavailableError) -> float:
    """The policy's backoff, or the server's Retry-After when longer (up to the policy's cap):
    the same rule as the step wrapper's (:func:`wfo_kit.pipeline.run_step`)."""
    from wfo_kit.pipeline import backoff_wait

    wait = backoff_wait(policy, attempt)
    after = error.details.get("retry_after") if isinstance(error.details, dict) else None
    if after is not None:
        wait = max(wait, min(after, policy.max_backoff_seconds))
    return wait
