"""The `carillon` command."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "Carillon: marketing journeys from your shop's events to e-mail, SMS and paid social.\n\n"
        "Quick start: `carillon serve` runs everything in one process on a SQLite file. "
        "In production run `carillon db upgrade` once, then `carillon api`, `carillon worker` "
        "and `carillon scheduler` as separate processes (PostgreSQL + Redis)."
    ),
    no_args_is_help=True,
    add_completion=False,
)
journeys_app = typer.Typer(help="Check the marketers' YAML journeys.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(journeys_app, name="journeys")
app.add_typer(db_app, name="db")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CARILLON_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Run everything in one process: the API, queue workers and the scheduler.

    The embedded default: a SQLite file (CARILLON_DATABASE_URL), an in-process queue unless CARILLON_REDIS_URL is set, and dry-run channels for providers without credentials.

    The schema is created or upgraded on start.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    import uvicorn

    from app.main import create_app

    _logging()
    uvicorn.run(create_app(embedded=True), host=host, port=port, log_config=None)


@app.command()
def api(host: Host = "0.0.0.0", port: Port = 8000) -> None:
    """Run the HTTP API only (production).

    Events are stored and queued; run `carillon worker` and `carillon scheduler` alongside. Run `carillon db upgrade` first.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    import uvicorn

    from app.main import create_app

    _logging()
    uvicorn.run(create_app(), host=host, port=port, log_config=None)


@app.command()
def worker(
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    threads: Annotated[int, typer.Option(help="Threads per process.")] = 8,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            help="Only consume this queue (repeatable): events, email, sms, meta_audience.",
        ),
    ] = None,
    poll_ms: Annotated[
        int,
        typer.Option(
            help="Longest pause between polls of an idle queue, in ms: lower "
            "picks work up sooner at the cost of more Redis calls."
        ),
    ] = 100,
) -> None:
    """Run queue workers (production): route events through journeys and make deliveries."""
    # dramatiq reads its idle back-off ceiling from the environment (default 1 s).
    os.environ["dramatiq_worker_timeout"] = str(poll_ms)  # noqa: SIM112 (dramatiq's spelling)
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "app.tasks",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    if queues:
        args += ["--queues", *queues]
    os.execv(sys.executable, args)


@app.command()
def scheduler() -> None:
    """Run the scheduler (production): fires due journey waits and re-enqueues lost work."""
    from app import scheduler as periodic
    from app.journeys import catalog
    from app.settings import get_settings

    _logging()
    catalog.sync_directory(get_settings().journeys_dir)
    periodic.build(blocking=True).start()


@journeys_app.command("validate")
def journeys_validate(
    path: Annotated[
        Path | None, typer.Argument(help="A journey file or a directory (default: journeys dir).")
    ] = None,
) -> None:
    """Check journey files; print every error as file:line:column and exit 1 if any."""
    from app.journeys.loader import load_path
    from app.settings import get_settings

    target = path or get_settings().journeys_dir
    if not target.exists():
        typer.echo(f"{target}: no such file or directory", err=True)
        raise typer.Exit(2)
    journeys, issues = load_path(target)
    for issue in issues:
        typer.echo(str(issue), err=True)
    if issues:
        typer.echo(f"{len(issues)} error(s)", err=True)
        raise typer.Exit(1)
    for journey in journeys:
        steps = len(journey.steps)
        typer.echo(f"ok  {journey.file}: {journey.id} ({steps} step{'s' if steps != 1 else ''})")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the schema (CARILLON_DATABASE_URL) to the latest version."""
    from app import migrate

    _logging()
    migrate.upgrade(revision)
    typer.echo("database is up to date")


def main() -> None:
    app()
