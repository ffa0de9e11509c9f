"""``/docs``: Swagger UI, its assets served by this server (no CDN, no outside request).

The page and its scripts are open (they hold no data); the schema they load (``/openapi.json``)
and every call made from the page need an API token, which the page asks for once per browser
tab and sends as a bearer token to this server only. Assets come from the ``swagger-ui-bundle``
package (the ``serve`` extra); a strict Content-Security-Policy keeps the page on this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from wfo_kit.serve.problems import Problem

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
#: Swagger UI's scripts run from this origin only; it styles inline, hence style-src.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wfo_kit API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs-init.js"></script>
</body>
</html>
"""


def _bundle() -> Path:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError as exc:
        raise Problem(
            404,
            "docs-not-installed",
            "Interactive docs not installed",
            "the swagger-ui-bundle package is not installed on this server",
            hint="pip install 'wfo_kit[serve]'; the schema itself is at /openapi.json",
        ) from exc
    return Path(swagger_ui_path)


@router.get("/docs", response_class=HTMLResponse)
def docs() -> HTMLResponse:
    _bundle()
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": DOCS_CSP})


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    if name == "docs-init.js":
        path = STATIC / name
        media = "text/javascript; charset=utf-8"
    elif name in ASSETS:
        path, media = _bundle() / name, ASSETS[name]
    else:
        raise Problem(404, "not-found", "Not found", f"no asset {name!r}")
    # Versioned with the package: a day of caching spares the 1 MB bundle on every visit.
    return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=86400"})
