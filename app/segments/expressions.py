"""What a segment file's CEL reads and gives, found in its parsed expression at load time.

cel-python has no type checker, so the mistakes a marketer makes in a segment are found here by
walking the tree: a `when` whose value cannot be true or false (`profile.computed.carts_30d`
alone, `... + 1`), a read of something a segment cannot depend on (`profile.segments` in a
segment's own rule would make segments depend on each other), and every computed trait it
names (checked against the directory's traits by `loader`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lark
from pydantic_core import PydanticCustomError

from app.journeys.conditions import Condition

# What `profile.<x>` a segment's `when` may read, and a trait's `compute`.
WHEN_READS = frozenset({"computed", "traits", "email", "phone", "id", "user_id"})
COMPUTE_READS = frozenset({"computed"})
# Functions whose value is never true or false.
_NOT_BOOLEAN_FUNCTIONS = frozenset(
    {"size", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "type"}
)


@dataclass(frozen=True)
class Reference:
    """`profile.computed.<name>` written at (line, column) of the expression."""

    name: str
    line: int
    column: int


def _first_token(tree: lark.Tree | lark.Token) -> lark.Token | None:
    if isinstance(tree, lark.Token):
        return tree
    for child in tree.children:
        found = _first_token(child)
        if found is not None:
            return found
    return None


def _at(tree: lark.Tree | lark.Token) -> dict[str, int]:
    token = _first_token(tree)
    line = getattr(token, "line", None) or 1
    column = getattr(token, "column", None) or 1
    return {"line": line, "column": column}


def _path(tree: lark.Tree) -> list[str] | None:
    """`profile.computed` for a chain of field reads from a variable; None otherwise."""
    if tree.data == "member_dot" and isinstance(tree.children[1], lark.Token):
        inner = tree.children[0]
        head = _path(inner) if isinstance(inner, lark.Tree) else None
        return None if head is None else [*head, str(tree.children[1])]
    if tree.data == "ident" and isinstance(tree.children[0], lark.Token):
        return [str(tree.children[0])]
    if len(tree.children) == 1 and isinstance(tree.children[0], lark.Tree):
        return _path(tree.children[0])
    return None


def _reads(ast: lark.Tree) -> Iterator[tuple[list[str], lark.Token]]:
    """Each `a.b.c` field read: (the path it reads from, the field's token)."""
    for tree in ast.iter_subtrees():
        if tree.data == "member_dot" and isinstance(tree.children[1], lark.Token):
            inner = tree.children[0]
            head = _path(inner) if isinstance(inner, lark.Tree) else None
            if head is not None:
                yield head, tree.children[1]
        elif tree.data == "member_index":
            inner, index = tree.children[0], tree.children[1]
            head = _path(inner) if isinstance(inner, lark.Tree) else None
            literal = _literal(index) if isinstance(index, lark.Tree) else None
            if head is not None and literal is not None and literal.startswith(('"', "'")):
                yield head, literal.update(value=literal.strip("\"'"))


def _literal(tree: lark.Tree) -> lark.Token | None:
    while isinstance(tree, lark.Tree) and len(tree.children) == 1:
        child = tree.children[0]
        if tree.data == "literal" and isinstance(child, lark.Token):
            return child
        if not isinstance(child, lark.Tree):
            return None
        tree = child
    return None


def trait_references(condition: Condition) -> list[Reference]:
    """Every computed trait the expression names, where it names it."""
    if condition.ast is None:
        return []
    return [
        Reference(str(token), token.line or 1, token.column or 1)
        for head, token in _reads(condition.ast)
        if head == ["profile", "computed"]
    ]


def computed_only(condition: Condition) -> tuple[str, ...] | None:
    """The computed traits the expression reads, when every read of `profile` is a
    `profile.computed.<name>`: its answer then depends on those values alone. None when it
    reads anything else of the person (`profile.traits`, `size(profile.computed)`...)."""
    if condition.ast is None:
        return None
    whole = [
        tree
        for tree in condition.ast.iter_subtrees()
        if tree.data == "ident" and str(tree.children[0]) == "profile"
    ]
    reads = list(_reads(condition.ast))
    computed = [head for head, token in reads if head == ["profile"] and token == "computed"]
    names = [str(token) for head, token in reads if head == ["profile", "computed"]]
    if not len(whole) == len(computed) == len(names):
        return None
    return tuple(sorted(set(names)))


def check_profile_reads(condition: Condition, allowed: frozenset[str]) -> None:
    """Refuse `profile.<x>` for an `x` not in `allowed`."""
    if condition.ast is None:
        return
    for head, token in _reads(condition.ast):
        if head == ["profile"] and str(token) not in allowed:
            raise PydanticCustomError(
                "condition",
                f"profile.{token} cannot be read here",
                {
                    "hint": f"read {', '.join(f'profile.{a}' for a in sorted(allowed))}",
                    "line": token.line or 1,
                    "column": token.column or 1,
                },
            )


def results(tree: lark.Tree) -> Iterator[tuple[str, lark.Tree]]:
    """The expressions whose value is the whole expression's (both arms of `c ? a : b`), each
    as `bool`, `other` (never true or false) or `unknown` (a field or a function: data says),
    with its subtree."""
    while True:
        if tree.data == "expr" and len(tree.children) == 3:
            for arm in tree.children[1:]:
                if isinstance(arm, lark.Tree):
                    yield from results(arm)
            return
        children = [c for c in tree.children if isinstance(c, lark.Tree)]
        kind = tree.data
        if kind in ("conditionalor", "conditionaland") and len(tree.children) > 1:
            yield "bool", tree
            return
        if kind == "relation" and children and children[0].data.startswith("relation_"):
            yield "bool", tree
            return
        if kind == "addition" and children and children[0].data.startswith("addition_"):
            yield "other", tree
            return
        if kind == "multiplication" and children and children[0].data.startswith("multiplication_"):
            yield "other", tree
            return
        if kind == "unary" and children and children[0].data in ("unary_not", "unary_neg"):
            yield ("bool" if children[0].data == "unary_not" else "other"), tree
            return
        if kind == "literal":
            token = tree.children[0]
            yield ("bool" if str(token) in ("true", "false") else "other"), tree
            return
        if kind in ("list_lit", "map_lit"):
            yield "other", tree
            return
        if kind == "ident_arg":
            name = str(tree.children[0])
            verdict = "other" if name in _NOT_BOOLEAN_FUNCTIONS else "unknown"
            yield ("bool" if name == "has" else verdict), tree
            return
        if len(children) != 1 or len(tree.children) != 1:
            yield "unknown", tree
            return
        tree = children[0]


def check_boolean(condition: Condition) -> None:
    """Refuse a `when` whose value is certainly not true or false."""
    if condition.ast is None:
        return
    for kind, tree in results(condition.ast):
        if kind == "other":
            raise PydanticCustomError(
                "condition",
                "{name} must be true or false, but this gives a number, text or list",
                {"hint": "compare it, e.g. profile.computed.carts_30d >= 2", **_at(tree)},
            )


def bare_reads(condition: Condition) -> list[Reference]:
    """The computed traits read as the whole value (`when: profile.computed.carts_30d`):
    `loader` refuses those whose aggregate is a number or a date."""
    if condition.ast is None:
        return []
    found = []
    for kind, tree in results(condition.ast):
        path = _path(tree) if kind == "unknown" else None
        if path is not None and len(path) == 3 and path[:2] == ["profile", "computed"]:
            at = _at(tree)
            token = next(t for h, t in _reads(tree) if h == ["profile", "computed"])
            found.append(Reference(str(token), at["line"], token.column or at["column"]))
    return found
