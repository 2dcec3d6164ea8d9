"""What a CEL condition may cost: refused at load where the cost shows in the text, stopped
at run time otherwise.

CEL has no loops, but its comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`)
run their body once per item, and one inside another multiplies the list sizes. cel-python
walks the parsed tree in Python, about 20 µs per node: `items.all(a, items.all(b, a != b))`
over a 300-item list took 27 s, on the path every event takes, and cel-python has no cost
model to stop it. So:

- at load, comprehensions nested more than `MAX_NESTING` deep are refused (each level
  multiplies by a list size that data chooses), and so is a condition whose lists are written
  in it (`[1, 2, 3].all(...)`) when their sizes alone already exceed the step budget;
- at run time, each node evaluated is a step and `+` pays for the text or list it builds
  (`CEL_LIMITS`, `app.journeys.budget`); past a limit the condition fails with the reason,
  as any condition that cannot be evaluated does.
"""

from __future__ import annotations

import lark
from celpy import InterpretedRunner, celtypes
from celpy.evaluation import Evaluator, Result, base_functions

from app.journeys import budget
from app.journeys.budget import Limits

# Steps are nodes evaluated (a comparison such as `i.price > 100` is about 25): room for a
# comprehension over a thousand items, half a second of work. The clock is only the last
# resort, far enough above that a busy machine does not fail a condition the steps allow.
CEL_LIMITS = Limits(steps=25_000, chars=1_000_000, seconds=5.0, step_unit="evaluation steps")
MAX_NESTING = 2
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


class CostError(ValueError):
    """The condition is too costly to keep; `token` is where to point."""

    def __init__(self, message: str, token: lark.Token) -> None:
        super().__init__(message)
        self.message = message
        self.token = token


def check_cost(ast: lark.Tree) -> None:
    """Refuse what is too costly whatever the data: deep nesting, or large written lists."""
    deepest = _deepest(ast)
    if deepest is not None and deepest[0] > MAX_NESTING:
        raise CostError(
            f"comprehensions nested {deepest[0]} deep (at most {MAX_NESTING}): each level runs "
            "once per item of the level above",
            deepest[1],
        )
    steps = _written_steps(ast)
    if steps > CEL_LIMITS.steps:
        raise CostError(
            f"the lists written in this condition alone make {steps:,} comprehension passes; "
            f"a condition may take {CEL_LIMITS.steps:,} {CEL_LIMITS.step_unit}",
            _first_macro(ast),
        )


def _macro(tree: lark.Tree) -> tuple[lark.Tree, lark.Token, list[lark.Tree]] | None:
    """(target, macro name, body expressions) for `target.all(x, body)` and the like."""
    if tree.data != "member_dot_arg" or len(tree.children) < 3:
        return None
    target, method, args = tree.children[0], tree.children[1], tree.children[2]
    if not isinstance(method, lark.Token) or str(method) not in MACROS:
        return None
    if not isinstance(target, lark.Tree) or not isinstance(args, lark.Tree):
        return None
    bodies = [expr for expr in args.children[1:] if isinstance(expr, lark.Tree)]
    return target, method, bodies


def _children(tree: lark.Tree) -> list[lark.Tree]:
    return [child for child in tree.children if isinstance(child, lark.Tree)]


def _deepest(tree: lark.Tree) -> tuple[int, lark.Token] | None:
    """The deepest nesting of comprehensions in `tree`, and the innermost one's name."""
    macro = _macro(tree)
    if macro is None:
        found = [_deepest(child) for child in _children(tree)]
        return max((f for f in found if f is not None), default=None, key=lambda f: f[0])
    target, method, bodies = macro
    inner = [_deepest(body) for body in bodies]
    nested = max((f for f in inner if f is not None), default=None, key=lambda f: f[0])
    here = (nested[0] + 1, nested[1]) if nested else (1, method)
    beside = _deepest(target)
    return beside if beside and beside[0] > here[0] else here


def _written_size(tree: lark.Tree) -> int:
    """How many items a comprehension's target has when it is a list written in the
    condition; 0 when data decides (no lower bound is known then)."""
    while tree.data != "list_lit":
        children = _children(tree)
        if len(children) != 1:
            return 0
        tree = children[0]
    items = _children(tree)
    return len(_children(items[0])) if items else 0


def _written_steps(tree: lark.Tree) -> int:
    """At least how many comprehension passes the written lists make: each pass is a step."""
    macro = _macro(tree)
    if macro is None:
        return sum(_written_steps(child) for child in _children(tree))
    target, _, bodies = macro
    per_item = 1 + sum(_written_steps(body) for body in bodies)
    return _written_steps(target) + _written_size(target) * per_item


def _first_macro(tree: lark.Tree) -> lark.Token:
    for node in tree.iter_subtrees_topdown():
        if (macro := _macro(node)) is not None:
            return macro[1]
    raise AssertionError("a cost from written lists implies a comprehension")


# --- run time ------------------------------------------------------------------------------


class _BudgetedEvaluator(Evaluator):
    """cel-python's evaluator, paying a step for each node it evaluates."""

    def visit_children(self, tree: lark.Tree) -> list[Result]:
        budget.current(CEL_LIMITS).step()
        return super().visit_children(tree)

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:
        """A comprehension's body, evaluated per item: paid from the same budget."""
        return _BudgetedEvaluator(ast, activation=self.activation)


class BudgetedRunner(InterpretedRunner):
    def evaluate(self, context: dict[str, Result]) -> celtypes.Value:  # type: ignore[override]
        evaluator = _BudgetedEvaluator(ast=self.ast, activation=self.new_activation())
        return evaluator.evaluate(context)


_ADD = base_functions["_+_"]


def _add(left: Result, right: Result) -> Result:
    """`+`, paying for the text or list it builds (checked before building it)."""
    spend = budget.current(CEL_LIMITS)
    if isinstance(left, str | bytes | list) and isinstance(right, str | bytes | list):
        spend.fits(len(left) + len(right))
    result = _ADD(left, right)
    if isinstance(result, str | bytes | list):
        spend.built(len(result))
    return result


BUDGETED_FUNCTIONS = {"_+_": _add}
