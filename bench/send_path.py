"""What one `POST /v1/messages` costs the API: statements (round trips) and CPU per request,
counted in-process on a scratch PostgreSQL database, with and without an `Idempotency-Key`.

Unlike the answer time under load (`bench/transactional.py`), these figures barely move with
the machine's load, so they say what a change to the request path saves. The people are
identified (phone, SMS opt-in) and routed with the shipped journey and segment files loaded;
each request is the load test's inline SMS, through the whole app (FastAPI's test client:
routing, the send key, parsing, the service, the answer) with an in-process queue.

    .venv/bin/python -m bench.send_path --database bench_send_path [--requests 500]
"""

from __future__ import annotations

import os
import secrets

from fastapi.testclient import TestClient

from app.db import get_engine, session_scope
from app.events import routing
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.journeys import catalog
from app.main import create_app
from app.migrate import upgrade
from app.segments import catalog as segment_files
from app.settings import get_settings
from bench import direct
from bench.common import arguments, load_average, machine, quiet_settings, scratch_database
from bench.round_trips import counted, line, shapes
from tests.processes import REPO

SEND_KEY = "bench-send-key-0123456789abcdef"
WARM_UP = 20  # requests before counting: statement caches, first connections


def _people(count: int) -> None:
    raw = [
        {
            "type": "identify",
            "userId": f"tx-{i}",
            "traits": {"phone": direct.phone(i), "sms_opt_in": True},
            "messageId": f"tx-{i}-identify",
        }
        for i in range(count)
    ]
    with session_scope() as session:
        ids = store(session, [SegmentEvent.model_validate(r) for r in raw], "default")
    routing.process_many(ids)


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--requests", type=int, default=500, help="requests per case")
    parser.add_argument(
        "--statements", type=int, default=0, metavar="N", help="list each case's N most run"
    )
    args = parser.parse_args()
    database_url = scratch_database(args)
    os.environ.update(
        {
            "CARILLON_DATABASE_URL": database_url,
            "CARILLON_SECRET_KEY": secrets.token_urlsafe(32),
            "CARILLON_SEND_KEYS": f"bench={SEND_KEY}",
            **quiet_settings(),
        }
    )
    os.environ.pop("CARILLON_REDIS_URL", None)  # the in-process queue: nothing is consumed
    get_settings.cache_clear()
    upgrade()
    catalog.sync_directory(REPO / "journeys")
    segment_files.sync_directory(REPO / "segments")
    total = WARM_UP + 2 * args.requests
    _people(total)
    print(f"machine: {machine()}; load average {load_average()} at the start")
    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {SEND_KEY}"

    def post(index: int, keyed: bool) -> None:
        body = {"phone": direct.phone(index), "channel": "sms", "content": {"text": "Code 1"}}
        headers = {"Idempotency-Key": f"bench-{index}"} if keyed else {}
        answer = client.post("/v1/messages", json=body, headers=headers)
        assert answer.status_code == 202, answer.text

    for index in range(WARM_UP):
        post(index, keyed=True)
    engine = get_engine()
    cases = []
    for case, keyed in (("with key", True), ("no key", False)):
        first = WARM_UP + (args.requests if keyed else 0)
        with counted(engine) as counts:
            for index in range(first, first + args.requests):
                post(index, keyed)
        cases.append((case, counts))
    for case, counts in cases:
        print(line(case, "request", args.requests, counts))
    if args.statements:
        for case, counts in cases:
            print(shapes(case, args.requests, counts, args.statements))
    print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
