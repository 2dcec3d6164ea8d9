"""The segments directory → compiled definitions, or every problem as `file:line:column`.

Each file is validated on its own by its pydantic model (`language`, through
`app.yamlfiles`); what only the directory as a whole can tell is checked here, with the same
positions: a trait defined twice, a trait read but defined nowhere, computed traits that read
each other in a cycle, a `when` that is a bare number, two segments of one id, two files of
stages. A file with a problem is left out, so a running system keeps its previous version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.journeys.conditions import Condition
from app.segments import expressions
from app.segments.definition import SegmentDefinition, build
from app.segments.language import DERIVED, SegmentFile
from app.yamlfiles import FileInvalid, Issue, parse_yaml, read_text, validate_yaml
from app.yamlfiles.positions import inner_position, node_position
from app.yamlfiles.wording import closest_hint

# Aggregates whose value is never true or false (first/last may be any value of the event).
_NOT_BOOLEAN = ("count", "sum", "min", "max", "distinct")


@dataclass(frozen=True)
class _Loaded:
    model: SegmentFile
    definition: SegmentDefinition
    document: Any  # the round-trip YAML, for positions
    lines: list[str]

    @property
    def file(self) -> str:
        return self.definition.file

    def at(self, *path: str | int, key: bool = False) -> tuple[int, int]:
        return node_position(self.document, list(path), key=key)

    def inside(self, path: list[str | int], text: str, line: int, column: int) -> tuple[int, int]:
        return inner_position(self.lines, node_position(self.document, path), text, line, column)


def parse_segment(text: str, file: str) -> SegmentDefinition:
    """One file, validated on its own (no cross-file checks)."""
    return build(validate_yaml(text, file, SegmentFile, "the segment"), file, text)


def _load_file(path: Path) -> _Loaded:
    text = read_text(path)
    model = validate_yaml(text, str(path), SegmentFile, "the segment")
    return _Loaded(
        model, build(model, str(path), text), parse_yaml(text, str(path)), text.splitlines()
    )


def files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path]


def load_path(path: Path) -> tuple[list[SegmentDefinition], list[Issue]]:
    """Every file of the directory (or the one file), and every problem of any of them."""
    loaded: list[_Loaded] = []
    issues: list[Issue] = []
    for file in files_of(path):
        try:
            loaded.append(_load_file(file))
        except FileInvalid as exc:
            issues += exc.issues
    issues += check_together(loaded)
    rejected = {issue.file for issue in issues}
    return [item.definition for item in loaded if item.file not in rejected], issues


def channel_lists(path: Path) -> dict[str, tuple[str, ...]]:
    """Each segment's and lifecycle stage's `channels`, by id, from the directory's valid
    files (none when it does not exist): what journeys' `channel: preferred` sends are
    checked against when they load."""
    files = load_path(path)[0] if path.exists() else []
    return {segment.id: segment.channels for file in files for segment in file.segments}


def _expressions(item: _Loaded) -> list[tuple[list[str | int], Condition]]:
    """Where each profile expression of the file is written, with its compiled form."""
    found: list[tuple[list[str | int], Condition]] = []
    for trait in item.definition.derived:
        found.append((["traits", trait.name, DERIVED], trait.expression))
    for index, segment in enumerate(item.definition.segments):
        if segment.when is not None:
            path: list[str | int] = (
                ["stages", index, "when"] if item.definition.has_stages else ["when"]
            )
            found.append((path, segment.when))
    return found


def check_together(loaded: list[_Loaded]) -> list[Issue]:
    """What the files get wrong together."""
    issues: list[Issue] = []
    traits: dict[str, tuple[_Loaded, str]] = {}  # name → where first defined, its kind
    for item in loaded:
        for name, spec in item.model.traits.items():
            if name in traits:
                first, _ = traits[name]
                line, column = first.at("traits", name, key=True)
                issues.append(
                    Issue(
                        item.file,
                        *item.at("traits", name, key=True),
                        f"trait {name!r} is defined twice",
                        f"first defined at {first.file}:{line}:{column}; trait names are "
                        "global to the segments directory, rename one",
                    )
                )
            else:
                traits[name] = (item, spec.kind)
    issues += _check_ids(loaded)
    for item in loaded:
        for path, condition in _expressions(item):
            issues += _check_reads(item, path, condition, traits)
    issues += _check_cycles(loaded)
    return issues


def _check_ids(loaded: list[_Loaded]) -> list[Issue]:
    issues = []
    seen: dict[str, str] = {}
    staged = [item for item in loaded if item.definition.has_stages]
    for item in staged[1:]:
        first = staged[0].file
        issues.append(
            Issue(
                item.file,
                *item.at("stages", key=True),
                "lifecycle stages are defined twice",
                f"first in {first}: one file holds the stages, so each person has one stage",
            )
        )
    for item in loaded:
        for index, segment in enumerate(item.definition.segments):
            where: tuple[str | int, ...] = ("stages", index, "id") if segment.stage else ("id",)
            if segment.id in seen:
                issues.append(
                    Issue(
                        item.file,
                        *item.at(*where),
                        f"segment {segment.id!r} is defined twice",
                        f"also in {seen[segment.id]}; segment and stage ids are one namespace",
                    )
                )
            seen.setdefault(segment.id, item.file)
    return issues


def _check_reads(
    item: _Loaded,
    path: list[str | int],
    condition: Condition,
    traits: dict[str, tuple[_Loaded, str]],
) -> list[Issue]:
    issues = []
    for ref in expressions.trait_references(condition):
        if ref.name in traits:
            continue
        hint = closest_hint(
            ref.name,
            list(traits),
            "define it under traits: in this file or another one of the directory",
        )
        issues.append(
            Issue(
                item.file,
                *item.inside(path, condition.source, ref.line, ref.column),
                f"{'.'.join(str(p) for p in path)}: trait {ref.name!r} is not defined",
                hint,
            )
        )
    if path[-1] != DERIVED:
        for ref in expressions.bare_reads(condition):
            kind = traits.get(ref.name, (None, ""))[1]
            if kind in _NOT_BOOLEAN:
                issues.append(
                    Issue(
                        item.file,
                        *item.inside(path, condition.source, ref.line, ref.column),
                        f"{'.'.join(str(p) for p in path)} must be true or false, but trait "
                        f"{ref.name!r} is a number ({kind})",
                        f"compare it, e.g. profile.computed.{ref.name} >= 1",
                    )
                )
    return issues


def _check_cycles(loaded: list[_Loaded]) -> list[Issue]:
    derived = {t.name: (item, t) for item in loaded for t in item.definition.derived}
    issues = []
    reported: set[str] = set()
    for start in derived:
        stack = [(start, [start])]
        while stack:
            name, trail = stack.pop()
            for read in derived[name][1].reads:
                if read == start:
                    cycle = [*trail, start]
                    if start not in reported:
                        reported.update(cycle)
                        item = derived[start][0]
                        issues.append(
                            Issue(
                                item.file,
                                *item.at("traits", start, key=True),
                                f"computed traits read each other in a cycle: {' -> '.join(cycle)}",
                                "a computed trait may read only traits that do not read it back",
                            )
                        )
                elif read in derived and read not in trail:
                    stack.append((read, [*trail, read]))
    return issues
