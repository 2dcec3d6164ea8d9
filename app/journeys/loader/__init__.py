"""Journey YAML files → validated `Journey` objects, or every problem as `file:line:column`.

Validation is written by hand over ruamel.yaml's round-trip nodes (read, and placed, by
`app.yamlfiles`): every issue points at the exact key or value to fix, and checking goes on
after the first error so a marketer sees all of a file's problems at once. Each step kind is
parsed by one small function found in `STEP_PARSERS`, so a new kind is one function and one
table entry (and one model in `app/journeys/language/`, from which the JSON Schema editors
use is generated; the tests hold the models and the loader to one corpus of files).

Modules: `checker` (one file's issues, the small checks), `document` (the file and its
top-level keys), `steps` / `leaf_steps` / `splits` (the steps), `messages` (what is sent),
`scenarios` (`tests:`).
"""

from app.journeys.loader.checker import JourneyInvalid
from app.journeys.loader.document import load_directory, load_path, parse_journey
from app.journeys.loader.steps import BARE_STEPS, STEP_PARSERS
from app.yamlfiles.issues import Issue

__all__ = [
    "BARE_STEPS",
    "STEP_PARSERS",
    "Issue",
    "JourneyInvalid",
    "load_directory",
    "load_path",
    "parse_journey",
]
