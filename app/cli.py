"""The `carillon` command."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.analytics.experiments import MIN_PER_ARM

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic_core import ErrorDetails

T = TypeVar("T")

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
deliveries_app = typer.Typer(help="Look into deliveries.", no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")
templates_app = typer.Typer(help="Look at messages before they go out.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
profiles_app = typer.Typer(
    help="A person's data: show it, export it, erase it (GDPR access and erasure requests).",
    no_args_is_help=True,
)
app.add_typer(profiles_app, name="profiles")
PersonId = Annotated[
    str,
    typer.Argument(help="A userId, or user:<id>, anonymous:<id>, email:<address>, phone:<E.164>."),
]
segments_app = typer.Typer(
    help="Computed traits, segments and lifecycle stages (segments/).", no_args_is_help=True
)
app.add_typer(segments_app, name="segments")
report_app = typer.Typer(help="Campaign results, as the marketer reads them.", no_args_is_help=True)
broadcasts_app = typer.Typer(
    help="One message to a whole audience at a set time (broadcasts/).", no_args_is_help=True
)
app.add_typer(broadcasts_app, name="broadcasts")
BroadcastId = Annotated[str, typer.Argument(help="The broadcast's id (its file's `id:`).")]
app.add_typer(report_app, name="report")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


def _logging(default_format: str = "json") -> None:
    """CARILLON_LOG_LEVEL, and CARILLON_LOG_FORMAT: `json` (one object per line with the request,
    event, profile, trip and delivery ids: the production default) or `text`."""
    from app.ops import logs

    logs.configure(default_format)


def _must_exist(target: Path) -> None:
    """A folder or file of YAML to check: exit 2 with one line when there is none."""
    if not target.exists():
        typer.echo(f"{target}: no such file or directory", err=True)
        raise typer.Exit(2)


def _refuse_on(issues: Sequence[object]) -> None:
    """Every problem of the files, one per line (file:line:column), then exit 1."""
    for issue in issues:
        typer.echo(str(issue), err=True)
    if issues:
        typer.echo(f"{len(issues)} error(s)", err=True)
        raise typer.Exit(1)


def _exit_0_on_sigterm() -> None:
    """A stop asked for with SIGTERM (a supervisor, `docker stop`) is a success: exit code 0.

    Installed first thing, so it also covers start-up: as a container's PID 1, a process with
    no SIGTERM handler never sees the signal and is killed at the end of the grace period.
    uvicorn and the scheduler then install handlers that drain their work first; uvicorn hands
    the signal back here once it has."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))


def _local_admin_token(host: str) -> str | None:
    """A newcomer's `make run` should show what the journeys did without a setting: on a
    loopback address only, a random token for this run when none is configured."""
    import ipaddress
    import secrets

    if os.environ.get("CARILLON_ADMIN_TOKEN"):
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    token = secrets.token_urlsafe(24)
    os.environ["CARILLON_ADMIN_TOKEN"] = token
    return token


def _complaint(error: ErrorDetails) -> str:
    """One line naming the variable: a provider's own name (TWILIO_AUTH_TOKEN) is the error's
    location as it is; Carillon's are the field's name with the CARILLON_ prefix."""
    field = "_".join(str(part) for part in error["loc"])
    variable = field if field.isupper() else f"CARILLON_{field.upper()}" if field else "settings"
    message = error["msg"].removeprefix("Value error, ")
    return message if message.startswith(variable) else f"{variable}: {message}"


def _settings_or_exit(*, production: bool) -> None:
    """Check every setting before a long-running process starts: one line per problem on
    stderr and exit code 2, rather than a traceback from deep inside the first request.

    The production roles (`api`, `worker`, `scheduler`) must share CARILLON_SECRET_KEY and the
    queue in CARILLON_REDIS_URL (without it each would have an in-process queue of its own
    that no other process reads); `serve` on a SQLite file makes its own key on first start
    and keeps it beside the database."""
    from pydantic import ValidationError

    from app import signing
    from app.settings import get_settings
    from channels import registry

    lines: list[str] = []
    readers: list[Callable[[], object]] = [get_settings, *registry.settings_models()]
    for read in readers:  # Carillon's, each channel's own
        try:
            read()
        except ValidationError as exc:
            lines += [_complaint(error) for error in exc.errors()]
    for line in dict.fromkeys(lines):  # channels sharing a model share its complaints
        typer.echo(f"carillon: {line}", err=True)
    if lines:
        raise typer.Exit(2)
    settings = get_settings()
    if production and not settings.redis_url:
        typer.echo(
            "carillon: CARILLON_REDIS_URL is not set: api, worker and scheduler share their "
            "queue through Redis (e.g. redis://127.0.0.1:6379/0); to run everything in one "
            "process without Redis, use `carillon serve`",
            err=True,
        )
        raise typer.Exit(2)
    try:
        if production and not settings.secret_key:
            raise signing.MissingSecretKey(signing.MISSING)
        signing.secret_key(settings)
    except signing.MissingSecretKey as exc:
        typer.echo(f"carillon: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Run everything in one process: the API, queue workers and the scheduler.

    The embedded default: a SQLite file (CARILLON_DATABASE_URL), an in-process queue unless CARILLON_REDIS_URL is set, and dry-run channels for providers without credentials.

    The schema is created or upgraded on start. On a loopback address without CARILLON_ADMIN_TOKEN, a token for the ops dashboard is made for this run and printed.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    _exit_0_on_sigterm()
    dashboard_token = _local_admin_token(host)
    _settings_or_exit(production=False)
    import uvicorn

    from app.main import create_app

    _logging(default_format="text")  # a person at a terminal runs `serve`
    shown = "the CARILLON_ADMIN_TOKEN you set" if dashboard_token is None else dashboard_token
    typer.echo(f"Ops dashboard: http://{host}:{port}/ops (admin token: {shown})")
    uvicorn.run(create_app(embedded=True), host=host, port=port, log_config=None)


@app.command()
def api(host: Host = "0.0.0.0", port: Port = 8000) -> None:
    """Run the HTTP API only (production).

    Events are stored and queued; run `carillon worker` and `carillon scheduler` alongside. Run `carillon db upgrade` first.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    _exit_0_on_sigterm()
    _settings_or_exit(production=True)
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
            help="Only consume this queue (repeatable): events, or a channel's name.",
        ),
    ] = None,
    poll_ms: Annotated[
        int,
        typer.Option(
            help="Longest pause between polls of an idle queue, in ms: lower "
            "picks work up sooner at the cost of more Redis calls."
        ),
    ] = 100,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the workers' Prometheus metrics (provider latency, retries, dramatiq's "
            "own) on this port, gathered across the worker processes. Off when not given."
        ),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics port.")] = "0.0.0.0",
) -> None:
    """Run queue workers (production): route events through journeys and make deliveries."""
    _settings_or_exit(production=True)
    # dramatiq reads its idle back-off ceiling from the environment (default 1 s).
    os.environ["dramatiq_worker_timeout"] = str(poll_ms)  # noqa: SIM112 (dramatiq's spelling)
    os.environ.setdefault("CARILLON_LOG_FORMAT", "json")
    if metrics_port is not None:
        from app.ops.worker_metrics import enable

        enable(metrics_host, metrics_port)
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
    """Run the scheduler (production): fires due journey waits, decides A/B tests with a winner rule, reads the configured ad sets' spend and re-enqueues lost work."""  # noqa: E501
    _exit_0_on_sigterm()
    _settings_or_exit(production=True)
    from app import scheduler as periodic
    from app.journeys import catalog
    from app.segments import catalog as segment_files
    from app.settings import get_settings

    _logging()
    catalog.sync_directory(get_settings().journeys_dir)
    segment_files.sync_directory(get_settings().segments_dir)
    periodic.run()


@journeys_app.command("validate")
def journeys_validate(
    path: Annotated[
        Path | None, typer.Argument(help="A journey file or a directory (default: journeys dir).")
    ] = None,
) -> None:
    """Check journey files; print every error as file:line:column and exit 1 if any."""
    from app.journeys.catalog import load_files
    from app.settings import get_settings

    target = path or get_settings().journeys_dir
    _must_exist(target)
    journeys, issues = load_files(target)
    _refuse_on(issues)
    for journey in journeys:
        steps = len(journey.steps)
        typer.echo(f"ok  {journey.file}: {journey.id} ({steps} step{'s' if steps != 1 else ''})")


@journeys_app.command("schema")
def journeys_schema() -> None:
    """Print the JSON Schema of journey files, for editors (completion, hover help, checks)."""
    from app.journeys.schema import journey_schema

    typer.echo(json.dumps(journey_schema(), indent=2))


@journeys_app.command("simulate")
def journeys_simulate(
    file: Annotated[Path, typer.Argument(help="The journey file to simulate.")],
    events: Annotated[
        Path,
        typer.Option(
            help="JSON Lines of Segment events, each timed by `timestamp` (ISO 8601) "
            "or `at` (a duration after --start, e.g. 30m)."
        ),
    ],
    profile: Annotated[
        Path | None,
        typer.Option(help="JSON of the person: {traits: {...}, email: ..., phone: ...}."),
    ] = None,
    start: Annotated[
        datetime | None, typer.Option(help="Virtual start time (default: now, UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """Run one journey for one person on a virtual clock and print what would happen.

    Nothing is stored and nothing is sent: the real engine runs on a scratch database with dry-run channels, so the timeline shows exactly what production would do.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    from app.journeys.sandbox import isolate

    isolate()  # before the simulator's imports choose the queue
    from app.journeys import simulate, timeline
    from app.journeys.loader import JourneyInvalid, parse_journey

    try:
        journey = parse_journey(file.read_text(encoding="utf-8"), str(file))
        person = json.loads(profile.read_text(encoding="utf-8")) if profile else None
        begin = (start or datetime.now(UTC)).replace(microsecond=0)
        begin = begin if begin.tzinfo else begin.replace(tzinfo=UTC)
        timed = simulate.read_events(
            events.read_text(encoding="utf-8").splitlines(), begin, str(events)
        )
    except JourneyInvalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if person is not None and not isinstance(person, dict):
        typer.echo(f"error: {profile}: the profile must be a JSON object", err=True)
        raise typer.Exit(2)
    entries = simulate.run(journey, timed, person, begin)
    if as_json:
        typer.echo(json.dumps([entry.as_json() for entry in entries], indent=2))
    else:
        typer.echo(timeline.render(entries) or "nothing happens: the journey was not entered")


@journeys_app.command("test")
def journeys_test(
    path: Annotated[
        Path | None, typer.Argument(help="A journey file or a directory (default: journeys dir).")
    ] = None,
) -> None:
    """Run the `tests:` written in journey files; exit 1 if any fails (for your own CI)."""
    from app.settings import get_settings

    target = path or get_settings().journeys_dir
    from app.journeys.sandbox import isolate

    isolate()  # before the simulator's imports choose the queue
    from app.journeys import simulate
    from app.journeys.loader import load_path

    journeys, issues = load_path(target)
    for issue in issues:
        typer.echo(str(issue), err=True)
    failed = passed = 0
    for journey in journeys:
        for scenario in journey.tests:
            problems = simulate.check(journey, scenario)
            verdict = "FAIL" if problems else "PASS"
            typer.echo(f"{verdict}  {journey.id}: {scenario.name}")
            for problem in problems:
                typer.echo(f"      {problem}")
            failed += bool(problems)
            passed += not problems
    typer.echo(
        f"{passed} passed, {failed} failed" + (f", {len(issues)} file error(s)" if issues else "")
    )
    if failed or issues:
        raise typer.Exit(1)


@journeys_app.command("reload")
def journeys_reload() -> None:
    """Load the journeys directory into the running system, without a restart.

    Changed files become new versions (running trips finish on theirs); a file with errors keeps its last good version. Exits 1 if any file was rejected.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    from app.journeys import catalog
    from app.settings import get_settings

    _logging()
    issues = catalog.sync_directory(get_settings().journeys_dir)
    for issue in issues:
        typer.echo(str(issue), err=True)
    _print_versions(all_versions=False)
    if issues:
        raise typer.Exit(1)


@journeys_app.command("history")
def journeys_history(
    journey_id: Annotated[str, typer.Argument(help="The journey's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the history as JSON.")] = False,
) -> None:
    """What happened to a journey itself: each version loaded, and each A/B test its split's winner rule decided (after which new entrants all take the winning arm). Exits 1 for a journey never loaded."""  # noqa: E501
    from app.db import session_scope
    from app.journeys import timeline

    with session_scope() as session:
        entries = timeline.history(session, journey_id)
    if not entries:
        typer.echo(
            f"error: no journey {journey_id!r} was ever loaded (see `carillon journeys list`)",
            err=True,
        )
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps([entry.as_json() for entry in entries], indent=2))
    else:
        typer.echo(timeline.render(entries))


@journeys_app.command("list")
def journeys_list(
    versions: Annotated[
        bool, typer.Option("--versions", help="Every version ever loaded.")
    ] = False,
) -> None:
    """List the journeys the system runs, and any file on disk it rejected (and why)."""
    from app.journeys.catalog import load_files
    from app.settings import get_settings

    _print_versions(all_versions=versions)
    directory = get_settings().journeys_dir
    if directory.exists():
        _, issues = load_files(directory)
        for issue in issues:
            typer.echo(f"rejected  {issue}")


def _print_versions(*, all_versions: bool) -> None:
    from app.db import session_scope
    from app.journeys import catalog

    with session_scope() as session:
        rows = catalog.versions(session, current_only=not all_versions)
    typer.echo(
        f"{'journey':<28} {'version':>7} {'state':<9} {'live':>6}  loaded               file"
    )
    for row in rows:
        typer.echo(
            f"{row.journey_id:<28} {row.version:>7} {row.state:<9} {row.live:>6}  "
            f"{row.loaded_at:%Y-%m-%d %H:%M:%S}  {row.file}"
        )


@segments_app.command("validate")
def segments_validate(
    path: Annotated[
        Path | None, typer.Argument(help="A segment file or a directory (default: segments dir).")
    ] = None,
) -> None:
    """Check segment files (each, and the directory together); print every error as file:line:column and exit 1 if any."""  # noqa: E501
    from app.segments.loader import load_path
    from app.settings import get_settings

    target = path or get_settings().segments_dir
    _must_exist(target)
    files, issues = load_path(target)
    _refuse_on(issues)
    for definition in files:
        traits = len(definition.aggregates) + len(definition.derived)
        kind = "stages" if definition.has_stages else "segment"
        typer.echo(f"ok  {definition.file}: {definition.id} ({kind}, {traits} traits)")


@segments_app.command("schema")
def segments_schema() -> None:
    """Print the JSON Schema of segment files, for editors."""
    from app.segments.language import SegmentFile

    typer.echo(json.dumps(SegmentFile.model_json_schema(), indent=2))


@segments_app.command("reload")
def segments_reload() -> None:
    """Load the segments directory into the running system; a file with errors keeps its last good version (exit 1)."""  # noqa: E501
    from app.segments import catalog
    from app.settings import get_settings

    _logging()
    issues = catalog.sync_directory(get_settings().segments_dir)
    for issue in issues:
        typer.echo(str(issue), err=True)
    if issues:
        raise typer.Exit(1)


@segments_app.command("list")
def segments_list() -> None:
    """List the segments and lifecycle stages the system runs, with their member counts and backfill progress, and any file on disk it rejected (and why)."""  # noqa: E501
    from app.db import session_scope
    from app.segments import catalog, directory
    from app.segments.loader import load_path
    from app.settings import get_settings

    with session_scope() as session:
        rows = directory.summary(session, catalog.current(session))
    typer.echo(f"{'segment':<28} {'kind':<8} {'members':>8}  {'backfill':<24} file")
    for row in rows:
        state = str(row.backfill) if row.backfill is not None else ""
        typer.echo(f"{row.id:<28} {row.kind:<8} {row.members:>8}  {state:<24} {row.file}")
    folder = get_settings().segments_dir
    if folder.exists():
        for issue in load_path(folder)[1]:
            typer.echo(f"rejected  {issue}")


@segments_app.command("show")
def segments_show(
    segment_id: Annotated[str, typer.Argument(help="A segment or lifecycle stage id.")],
) -> None:
    """Show a segment as JSON: its rule, channels, the traits of its file, its member count."""
    from app.db import session_scope
    from app.segments import catalog, directory

    with session_scope() as session:
        shown = directory.describe(session, catalog.current(session), segment_id)
    if shown is None:
        typer.echo(f"carillon: no segment {segment_id!r} (see carillon segments list)", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(shown, indent=2, default=str))


@segments_app.command("members")
def segments_members(
    segment_id: Annotated[str, typer.Argument(help="A segment or lifecycle stage id.")],
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
) -> None:
    """Print the segment's members, newest first: profile id, userId, since when."""
    from app.db import session_scope
    from app.segments import catalog, directory

    with session_scope() as session:
        if catalog.current(session).segment(segment_id) is None:
            typer.echo(
                f"carillon: no segment {segment_id!r} (see carillon segments list)", err=True
            )
            raise typer.Exit(1)
        rows = directory.members(session, segment_id, limit)
    for row in rows:
        typer.echo(f"{row.profile_id}\t{row.user_id or '-'}\t{row.entered_at.isoformat()}")


@broadcasts_app.command("validate")
def broadcasts_validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="A broadcast file or a directory (default: broadcasts dir)."),
    ] = None,
) -> None:
    """Check broadcast files against the running system (segments, the clock, rate limits); print every error as file:line:column and exit 1 if any."""  # noqa: E501
    from app.broadcasts import catalog
    from app.db import session_scope

    target = path or catalog.directory()
    _must_exist(target)
    with session_scope() as session:
        files, issues = catalog.files(session, target)
    _refuse_on(issues)
    for definition in files:
        typer.echo(
            f"ok  {definition.file}: {definition.id} ({definition.audience}, "
            f"{definition.sends}, at {definition.at.isoformat()})"
        )


@broadcasts_app.command("schema")
def broadcasts_schema() -> None:
    """Print the JSON Schema of broadcast files, for editors."""
    from app.broadcasts.language import broadcast_model

    typer.echo(json.dumps(broadcast_model().model_json_schema(), indent=2))


@broadcasts_app.command("list")
def broadcasts_list() -> None:
    """List the broadcast files and the started broadcasts, with their state and progress, and any file on disk that is rejected (and why)."""  # noqa: E501
    from app.broadcasts import catalog, progress
    from app.db import session_scope

    with session_scope() as session:
        files, issues = catalog.files(session)
        started = {p.id: p for p in progress.every(session)}
    typer.echo(f"{'broadcast':<28} {'state':<11} progress")
    for definition in files:
        if definition.id not in started:
            typer.echo(f"{definition.id:<28} {'not started':<11} at {definition.at.isoformat()}")
    for shown in started.values():
        typer.echo(f"{shown.id:<28} {shown.state:<11} {shown.bar()}")
    for issue in issues:
        typer.echo(f"rejected  {issue}")


def _broadcast_refused(exc: Exception) -> typer.Exit:
    typer.echo(f"carillon: {exc}", err=True)
    return typer.Exit(1)


@broadcasts_app.command("start")
def broadcasts_start(broadcast_id: BroadcastId) -> None:
    """Take the broadcast's audience now and send from its `at` on (each person's local time); a broadcast starts once."""  # noqa: E501
    from app.broadcasts import catalog, control, progress
    from app.db import session_scope

    _logging("text")
    try:
        with session_scope() as session:
            definition, issues = catalog.definition(session, broadcast_id)
            if definition is None:
                for issue in issues:
                    typer.echo(str(issue), err=True)
                if not issues:
                    typer.echo(
                        f"carillon: no broadcast file has the id {broadcast_id!r} in "
                        f"{catalog.directory()} (carillon broadcasts list shows them)",
                        err=True,
                    )
                raise typer.Exit(1)
            broadcast = control.start(session, definition)
            shown = progress.of(session, broadcast)
    except control.Refused as exc:
        raise _broadcast_refused(exc) from None
    first = f", first at {shown.next_due:%Y-%m-%d %H:%M}Z" if shown.next_due else ""
    typer.echo(f"started {broadcast_id}: {shown.total:,} recipients ({definition.audience}){first}")


def _transition(verb: str, broadcast_id: str) -> None:
    from app.broadcasts import control
    from app.db import session_scope

    moves = {"pause": control.pause, "resume": control.resume, "cancel": control.cancel}
    _logging("text")
    try:
        with session_scope() as session:
            broadcast = moves[verb](session, broadcast_id)
            state = broadcast.state
    except control.Refused as exc:
        raise _broadcast_refused(exc) from None
    typer.echo(f"{broadcast_id}: {state}")


@broadcasts_app.command("pause")
def broadcasts_pause(broadcast_id: BroadcastId) -> None:
    """Plan no further message of the broadcast until resume (those already planned still go)."""
    _transition("pause", broadcast_id)


@broadcasts_app.command("resume")
def broadcasts_resume(broadcast_id: BroadcastId) -> None:
    """Go on with a paused broadcast where it stopped: nobody twice, nobody left out."""
    _transition("resume", broadcast_id)


@broadcasts_app.command("cancel")
def broadcasts_cancel(broadcast_id: BroadcastId) -> None:
    """Stop the broadcast for good: nobody else gets it, planned messages not yet gone are cancelled."""  # noqa: E501
    _transition("cancel", broadcast_id)


@broadcasts_app.command("status")
def broadcasts_status(
    broadcast_id: BroadcastId,
    watch: Annotated[bool, typer.Option(help="Print it again every 2 s until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON, for a script.")] = False,
) -> None:
    """Show how far the broadcast got: a progress bar, who was skipped and why, what became of the messages."""  # noqa: E501
    import time

    from app.broadcasts import progress
    from app.db import session_scope

    while True:
        with session_scope() as session:
            shown = progress.one(session, broadcast_id)
        if shown is None:
            typer.echo(
                f"carillon: broadcast {broadcast_id!r} was never started "
                "(carillon broadcasts list shows the files and their state)",
                err=True,
            )
            raise typer.Exit(1)
        if as_json:
            typer.echo(json.dumps(shown.as_dict(), indent=2))
        else:
            _print_broadcast(shown)
        if not watch or shown.state in ("done", "cancelled"):
            return
        time.sleep(2)


def _print_broadcast(shown: Any) -> None:
    typer.echo(f"{shown.id}: {shown.name} ({shown.state})")
    typer.echo(f"  {shown.bar()}")
    entered = f"  entered the journey {shown.entered:,}" if shown.entered else ""
    typer.echo(
        f"  queued {shown.queued:,}{entered}  skipped {shown.skipped:,}  pending {shown.pending:,}"
        + (f"  withdrawn {shown.withdrawn:,}" if shown.withdrawn else "")
    )
    if shown.next_due is not None:
        typer.echo(f"  next turn at {shown.next_due:%Y-%m-%d %H:%M}Z")
    for reason, count in shown.skipped_because.items():
        typer.echo(f"  skipped {count:,}: {reason}")
    if shown.deliveries:
        statuses = ", ".join(f"{status} {count:,}" for status, count in shown.deliveries.items())
        typer.echo(f"  messages: {statuses}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the schema (CARILLON_DATABASE_URL) to the latest version."""
    from app import migrate

    _logging()
    migrate.upgrade(revision)
    typer.echo("database is up to date")


@app.command("queues")
def queues_command(
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    count: Annotated[
        int | None, typer.Option(min=1, help="With --watch, stop after this many tables.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /ops/queues's JSON.")] = False,
) -> None:
    """Show the send queues: broker depth, database backlog, throughput, dead letters.

    The same figures as GET /ops/queues, read from CARILLON_DATABASE_URL and CARILLON_REDIS_URL.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    import time

    from app.db import session_scope
    from app.ops import queues as queue_state
    from app.ops.table import render

    shown = 0
    while True:
        with session_scope() as session:
            snapshot = queue_state.snapshot(session)
        text = json.dumps(snapshot.as_dict(), indent=2) if as_json else render(snapshot)
        if watch and sys.stdout.isatty():
            typer.echo("\x1b[H\x1b[2J", nl=False)  # clear the screen, cursor home
        typer.echo(text)
        shown += 1
        if not watch or (count is not None and shown >= count):
            return
        typer.echo("")
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@deliveries_app.command("show")
def deliveries_show(
    delivery_id: Annotated[int, typer.Argument(help="The delivery's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Tell a delivery's whole story: event, waits, planned, sent or why not, provider id."""
    from app.db import session_scope
    from app.errors import NotFound
    from app.ops import story

    try:
        with session_scope() as session:
            told = story.tell(session, delivery_id)
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(told.as_dict(), indent=2, default=str))
    else:
        typer.echo(story.render(told))


@deliveries_app.command("dead")
def deliveries_dead(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Show at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """List dead letters, newest first: refused by the provider, or out of retries."""
    from app.db import session_scope
    from app.ops import dead_letters

    with session_scope() as session:
        dead = dead_letters.listing(session, limit)
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in dead], indent=2))
        return
    if not dead:
        typer.echo("No dead letters.")
        return
    for d in dead:
        typer.echo(
            f"{d.id}\t{d.channel}\t{d.status}\tattempts={d.attempts}\t"
            f"{d.journey_id}/{d.step_path}\t{d.profile_id}\t{d.status_code or '-'}\t"
            f"{d.error or ''}"
        )


@deliveries_app.command("replay")
def deliveries_replay(
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="A dead letter's id (repeatable).")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Put dead letters back in the outbox (idempotent: a second replay changes nothing)."""
    from app.db import session_scope
    from app.errors import CarillonError
    from app.ops import dead_letters

    if bool(ids) == replay_all:
        typer.echo("Give --id ID (one or more) or --all.", err=True)
        raise typer.Exit(2)
    if replay_all:
        with session_scope() as session:
            ids = [d.id for d in dead_letters.listing(session, limit=1_000_000)]
    failed = False
    for delivery_id in ids or []:
        try:
            with session_scope() as session:
                done = dead_letters.replay(session, delivery_id)
        except CarillonError as exc:
            typer.echo(str(exc), err=True)
            failed = True
            continue
        said = "replayed" if done.replayed else "already pending"
        typer.echo(f"{delivery_id}\t{said}")
    if failed:
        raise typer.Exit(1)


def _person_request(fn: Callable[..., T], *args: object) -> T:
    """Run a profile request; a bad id exits 2, an unknown or erased person 1, with why."""
    from app.profiles import requests

    try:
        return fn(*args)
    except requests.InvalidReference as exc:
        typer.echo(f"carillon: {exc}", err=True)
        raise typer.Exit(2) from None
    except (requests.UnknownPerson, requests.Erased) as exc:
        typer.echo(f"carillon: {exc}", err=True)
        raise typer.Exit(1) from None


def _cli_actor() -> str:
    """How the audit trail names a command-line request: the account that ran it."""
    import getpass

    try:
        return f"command line ({getpass.getuser()})"
    except (KeyError, OSError):
        return "command line"


@profiles_app.command("show")
def profiles_show(
    person_id: PersonId,
    limit: Annotated[
        int, typer.Option(min=1, max=200, help="Latest events, deliveries and trips to show.")
    ] = 20,
) -> None:
    """Show a person as JSON: traits, consent per channel, identities, latest history."""
    from app.profiles import records, requests

    shown = _person_request(requests.show, person_id, limit)
    typer.echo(records.to_json(shown, indent=2))


@profiles_app.command("export")
def profiles_export(person_id: PersonId) -> None:
    """Print every row Carillon holds about a person, as one JSON document (an access request).

    The export is recorded in the audit trail (profile_audit)."""
    from app.profiles import records, requests

    document = _person_request(requests.export, person_id, _cli_actor())
    typer.echo(records.to_json(document, indent=2))


@profiles_app.command("erase")
def profiles_erase(
    person_id: PersonId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person (an erasure request): traits, identities, event payloads and messages.

    Live trips end, pending messages are cancelled, audience removals are planned, and a keyed hash of each identity is kept so later events about them are dropped. Erasing again changes nothing more. Recorded in the audit trail.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    from app.profiles import requests

    if not yes and not typer.confirm(
        f"Erase everything about {person_id!r}? This cannot be undone"
    ):
        raise typer.Exit(1)
    answer = _person_request(requests.erase, person_id, _cli_actor())
    typer.echo(json.dumps(answer.as_dict(), default=str))


@templates_app.command("preview")
def templates_preview(
    journey: Annotated[str, typer.Argument(help="A journey file, or a journey id.")],
    step: Annotated[str, typer.Argument(help="The send step's path, e.g. 0 or 2.1.0.")],
    profile: Annotated[
        Path | None,
        typer.Option(help="JSON of the person: {traits: {...}, email: ..., phone: ...}."),
    ] = None,
    event: Annotated[
        Path | None,
        typer.Option(help="JSON of the trigger event: {event: ..., properties: {...}}."),
    ] = None,
) -> None:
    """Render every variant of a send step (each channel, each locale) for one person.

    SMS variants show their encoding (GSM-7 or UCS-2) and segment count. Exit 1 if a variant cannot be rendered or the journey is invalid, 2 for bad input. Nothing is sent.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    from app.journeys import preview
    from app.journeys.loader import JourneyInvalid
    from app.settings import get_settings

    try:
        found = preview.load_journey(journey, get_settings().journeys_dir)
        send = preview.send_step(found, step)
        person = preview.read_json(profile, "profile")
        trigger = preview.read_json(event, "event")
    except JourneyInvalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except preview.PreviewError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rendered = preview.preview(found, send, person, trigger)
    typer.echo(preview.format_preview(found, send, rendered))
    if any(item.error for item in rendered):
        raise typer.Exit(1)


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@report_app.command("experiments")
def report_experiments(
    journey: Annotated[
        str | None, typer.Argument(help="A journey id (default: every journey with a split).")
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table, csv (one row per arm) or json.")
    ] = ReportFormat.table,
    min_per_arm: Annotated[
        int, typer.Option(min=1, help="People every arm needs before a winner is called.")
    ] = MIN_PER_ARM,
) -> None:
    """A/B test results: per arm the people, conversions (the journey's goal) and rate with its 95 % interval, the lift against the control, the p-value, a sample-ratio check and a verdict in words.

    Exit 2 for a journey that is not loaded or has no split. How to read it: docs/analytics.md.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    from app.analytics import report
    from app.analytics.repository import UnknownExperiment
    from app.db import session_scope

    try:
        with session_scope() as session:
            found = report.results(session, journey, min_per_arm)
    except UnknownExperiment as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report.render(found, fmt.value), nl=fmt is not ReportFormat.csv)


def _report_roi(by: str, fmt: ReportFormat) -> None:
    from app.analytics import funnel, roi, spend
    from app.db import session_scope
    from app.settings import get_settings

    try:
        with session_scope() as session:
            stale = spend.stale_notes(session)
            if by == "channels":
                text = roi.render(roi.channels(session, get_settings()), fmt.value, by)
            else:
                text = funnel.render(funnel.report(session, get_settings()), fmt.value)
    except roi.CurrencyMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for note in stale:  # beside the figures, not in them: a CSV or JSON stays readable
        typer.echo(f"note: {note}", err=True)
    typer.echo(text, nl=fmt is not ReportFormat.csv)


_FORMAT_HELP = "table, csv (one row each) or json."


@report_app.command("channels")
def report_channels(
    fmt: Annotated[ReportFormat, typer.Option("--format", help=_FORMAT_HELP)] = ReportFormat.table,
) -> None:
    """Per channel: messages sent, billed units (SMS segments), cost, the goal revenue credited to its messages, and ROI = (revenue - cost) / cost.

    Prices: CARILLON_COST_PER_MESSAGE or CARILLON_COST_PER_THOUSAND (else the channel's own), in CARILLON_COST_CURRENCY; a channel whose ad sets are configured (CARILLON_META_AD_SETS) costs their spend as read from the ad platform, with a note on stderr when that reading fails. Exit 2 when revenue or spend is in another currency. How to read it: docs/campaigns.md.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    _report_roi("channels", fmt)


@report_app.command("journeys")
def report_journeys(
    fmt: Annotated[ReportFormat, typer.Option("--format", help=_FORMAT_HELP)] = ReportFormat.table,
) -> None:
    """Per journey (all arms), then per arm of its split: its funnel (people who entered, were sent a message, had one delivered, clicked, converted), then messages sent, billed units, cost, credited revenue and ROI.

    Transactional sends with inline content show as journey (api), without a funnel. Exit 2 when revenue is in another currency than CARILLON_COST_CURRENCY. How to read it: docs/campaigns.md.
    """  # noqa: E501 (one line per paragraph: the help text is re-wrapped to the terminal)
    _report_roi("journeys", fmt)


def main() -> None:
    app()
