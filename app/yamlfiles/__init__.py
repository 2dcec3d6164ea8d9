"""YAML files that marketers write (journeys today; segments and broadcasts next), read into
typed models, with every mistake of a file reported at once as `file:line:column: message`.

Modules: `issues` (the report), `reading` (text and YAML, with hints for syntax errors),
`positions` (where a value is written), `wording` (how a value is named in a message),
`models` (validate a file into a pydantic model; its errors placed on the YAML nodes).
"""

from app.yamlfiles.issues import FileInvalid, Issue
from app.yamlfiles.models import YamlModel, load_yaml_model, validate_yaml
from app.yamlfiles.reading import parse_yaml, read_text

__all__ = [
    "FileInvalid",
    "Issue",
    "YamlModel",
    "load_yaml_model",
    "parse_yaml",
    "read_text",
    "validate_yaml",
]
