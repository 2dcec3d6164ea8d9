"""Journeys run on the real database and queue: the suite's database fixtures, which the pure
journey tests of the folder above turn off, are taken back here."""

from tests.helpers import clean_state as clean_state  # the database fixtures
from tests.helpers import schema as schema
