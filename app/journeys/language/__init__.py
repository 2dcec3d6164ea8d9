"""The journey language as typed models: what a journey file may contain, described once.

`journey_model()` is the pydantic model of a whole journey file for the installed channels
(a channel's send step, message variant and expected message come from its `ChannelSpec`, so
a channel plugin needs no change here). `app.journeys.schema` generates the JSON Schema that
editors use from it, and the models validate a file through `app.yamlfiles` with every
mistake placed at its `file:line:column`.

Modules: `values` (the words of the language: text, durations, conditions, templates, the
last two compiled by validators), `content` (what each channel sends, from its spec), `steps`
(the step kinds), `document` (the whole file: trigger, goal, re-entry, send policy, messages,
tests), `compile` (a validated file → the runtime's `Journey`), `checks` (what spans parts of
a journey: steps that can never run, the split's weights, one split, winner and goal),
`files` (journey files and directories loaded through all of these: `parse_journey`,
`load_path`, `load_directory`, `JourneyInvalid`).
"""

from app.journeys.language.document import journey_model

__all__ = ["journey_model"]
