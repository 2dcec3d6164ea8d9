"""Broadcasts: one message (or a journey's trip) to a whole audience (a segment, or everyone
with consent for a channel) at a set time, each person's own local time unless the time has
an offset.

Modules: `language` (the file as written, validated with positions), `loader` (the directory,
and the checks that need the running system: segments, journeys, the clock, rate limits),
`catalog` (that system, read), `models` (the tables), `source` (how its deliveries are named),
`audience` (the snapshot taken at start), `sending` (the scheduler's chunks), `control`
(start, pause, resume, cancel: the one owner of a broadcast's state), `progress` (what
`status` and `/ops` show).
"""
