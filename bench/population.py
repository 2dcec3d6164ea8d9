"""People loaded straight into the database with COPY, as a shop's history would have left
them: a profile, its userId and one routed `Bench Purchase` event each. The fastest way rows
can get there, printed as the bound of what a backfill writes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

EVENT = "Bench Purchase"
SOURCE = "bench"
CHUNK = 50_000


def total(index: int) -> int:
    """What person `index` spent: 0 to 99, so a rule `>= 50` holds for half of them."""
    return index * 37 % 100


def load(database_url: str, people: int) -> float:
    """COPY `people` profiles (with their identity and event) into the database; seconds."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        for start in range(0, people, CHUNK):
            rows = [
                (str(uuid.UUID(int=index + 1)), f"bulk-{index}", total(index))
                for index in range(start, min(start + CHUNK, people))
            ]
            with conn.cursor() as cur:
                with cur.copy("COPY profiles (id, created_at, updated_at) FROM STDIN") as copy:
                    for profile_id, _, _ in rows:
                        copy.write_row((profile_id, now, now))
                columns = "kind, value, profile_id, created_at"
                with cur.copy(f"COPY profile_identities ({columns}) FROM STDIN") as copy:
                    for profile_id, user, _ in rows:
                        copy.write_row(("user_id", user, profile_id, now))
                columns = (
                    "source, message_id, type, name, user_id, timestamp, received_at, payload,"
                    " profile_id, enqueued_at, processed_at"
                )
                with cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                    for profile_id, user, spent in rows:
                        at = now - timedelta(days=1)
                        payload = {
                            "type": "track",
                            "event": EVENT,
                            "userId": user,
                            "messageId": f"{user}-purchase",
                            "timestamp": at.isoformat(),
                            "properties": {"total": spent},
                        }
                        copy.write_row(
                            (
                                SOURCE,
                                f"{user}-purchase",
                                "track",
                                EVENT,
                                user,
                                at,
                                at,
                                json.dumps(payload),
                                profile_id,
                                at,
                                at,
                            )
                        )
            conn.commit()
        conn.execute("ANALYZE profiles")
        conn.execute("ANALYZE events")
        conn.commit()
    return time.perf_counter() - started
