"""Journeys run on the real database and queue: the suite's database fixtures, which the pure
journey tests of the folder above turn off, are taken back here."""

from tests.helpers import clean_state, schema  # noqa: F401  (the database fixtures)
