"""``wfo serve`` and ``wfo users add|list|revoke`` (wired into :mod:`wfo_kit.cli`).

Nothing heavy is imported until a command runs: ``wfo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wfo_kit.errors import EXIT_BAD_INPUT, EXIT_OK

ROLES = ("viewer", "analyst", "admin")


def add_parsers(commands: argparse._SubParsersAction, parser_class: type) -> None:
    """Add ``serve`` and ``users`` to the ``wfo`` command line."""
    serve = commands.add_parser(
        "serve",
        help="serve the REST API: submit runs, follow them, read reports and results",
        description="Serve the REST API on uvicorn. Submitted runs are confined to --data-root "
        "and execute in --workers worker processes with warm kernels; every route but /healthz "
        "needs a bearer token (`wfo users add`). TLS (and HSTS) with --certfile and --keyfile.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")
    serve.add_argument(
        "--data-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="the folder submitted runs read their data from; every path they name must stay "
        "inside it (the server writes each submitted document there, as .wfo-serve-<run>.yaml)",
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--queue", type=int, default=16, help="runs that may wait for a worker; more get 429"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=32,
        metavar="MB",
        help="largest multipart submission (parameters and data files), in MB; more get 413",
    )
    serve.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run submissions on this Dask scheduler (tcp://host:8786) instead of local workers",
    )
    serve.add_argument("--users", type=Path, help="users file (default OUTPUT/users.json)")
    serve.add_argument(
        "--first-admin",
        metavar="NAME",
        help="when the users file has no user yet, add NAME as admin and print its token "
        "(once; an existing user's token is never printed)",
    )
    serve.add_argument("--certfile", type=Path, help="TLS certificate (PEM)")
    serve.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")

    users = commands.add_parser("users", help="manage API users and their tokens")
    actions = users.add_subparsers(
        dest="users_command", metavar="ACTION", parser_class=parser_class
    )
    add = actions.add_parser("add", help="add a user; print their token (shown only once)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    listing = actions.add_parser("list", help="list users and roles (never tokens)")
    revoke = actions.add_parser("revoke", help="revoke a user's token")
    revoke.add_argument("name")
    for parser in (users, add, listing, revoke):
        parser.add_argument(
            "--output", type=Path, default=Path("outputs"), help="output root folder"
        )
        parser.add_argument("--users", type=Path, help="users file (default OUTPUT/users.json)")


def cmd_serve(args: argparse.Namespace) -> int:
    from wfo_kit.errors import ConfigurationError
    from wfo_kit.serve.app import serve
    from wfo_kit.serve.settings import ServeSettings
    from wfo_kit.serve.users import load_users, users_path

    if args.workers < 1 or args.queue < 0 or not 0 < args.max_upload_mb <= 4096:
        print(
            "wfo: error: --workers must be at least 1, --queue at least 0, --max-upload-mb "
            "between 0 and 4096",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if (args.certfile is None) != (args.keyfile is None):
        print("wfo: error: TLS needs both --certfile and --keyfile", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.data_root.is_dir():
        msg = f"--data-root {args.data_root} is not a folder"
        raise ConfigurationError(msg, hint="give the folder submitted runs may read")
    settings = ServeSettings(
        output_root=args.output,
        data_root=args.data_root,
        users_file=args.users,
        workers=args.workers,
        queue_capacity=args.queue,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        scheduler=args.scheduler,
    )
    path = users_path(args.output, args.users)
    active = [u for u in load_users(path) if u.revoked is None]
    if not load_users(path) and args.first_admin:
        from wfo_kit.serve.users import add_user

        token = add_user(path, args.first_admin, "admin")
        active = [u for u in load_users(path) if u.revoked is None]
        print(
            f"wfo: added {args.first_admin} (admin), the first user; the token is shown only now:",
            file=sys.stderr,
        )
        print(token, flush=True)
    scheme = "https" if args.certfile else "http"
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else f"{args.workers} worker(s)"
    print(
        f"wfo serve: {scheme}://{args.host}:{args.port} (data root {args.data_root.resolve()}, "
        f"outputs {args.output.resolve()}, {where}, {len(active)} user(s))",
        file=sys.stderr,
    )
    if not active:
        print(
            f"wfo: note: no users in {path} yet: `wfo users add NAME --role admin`",
            file=sys.stderr,
        )
    serve(settings, host=args.host, port=args.port, certfile=args.certfile, keyfile=args.keyfile)
    return EXIT_OK


def cmd_users(args: argparse.Namespace) -> int:
    from wfo_kit.serve.users import add_user, load_users, revoke_user, users_path

    path = users_path(args.output, args.users)
    if args.users_command == "add":
        token = add_user(path, args.name, args.role)
        print(
            f"wfo: added {args.name} ({args.role}); the token is shown only now:", file=sys.stderr
        )
        print(token)
        return EXIT_OK
    if args.users_command == "revoke":
        user = revoke_user(path, args.name)
        print(f"revoked {user.name} ({user.role}) at {user.revoked}")
        return EXIT_OK
    if args.users_command in (None, "list"):
        users = load_users(path)
        if not users:
            print(f"no users in {path}")
        for user in users:
            state = f"revoked {user.revoked}" if user.revoked else "active"
            print(f"{user.name:<20} {user.role:<8} created {user.created}  {state}")
        return EXIT_OK
    return EXIT_BAD_INPUT  # argparse allows only the actions above
