"""What a template may cost: operations that would build huge texts are refused before they
build them, loops and calls are counted, and a message has a size limit."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from app.journeys.budget import Budget, Limits, OverBudget
from app.journeys.templates import (
    MAX_MESSAGE_CHARS,
    TemplateRenderError,
    Variant,
    compile_template,
    render_variant,
)

CONTEXT: dict[str, Any] = {
    "event": {"properties": {"items": [{"name": "Mug"}, {"name": "Bol"}], "total": 25}},
    "profile": {"id": "p1", "traits": {"first_name": "Alice"}},
}
OVER = "the template went over its limits: "
BLOCKED = "blocked by the template sandbox: "


def failure(source: str, *, html: bool = False, context: dict[str, Any] = CONTEXT) -> str:
    template = compile_template(source, html=html)  # compiling folds nothing big either
    with pytest.raises(TemplateRenderError) as info:
        template.render(context)
    return str(info.value)


# The review's examples, and their relatives: each asks for a 200 MB text in one operation.
PADDING = [
    "{{ 'x'.ljust(200000000) }}",
    "{{ 'x'.rjust(200000000) }}",
    "{{ 'x'.center(200000000) }}",
    "{{ 'x'.zfill(200000000) }}",
    "{{ 'x' | center(200000000) }}",
    "{{ 'x' | indent(200000000, true) }}",
    "{{ '%0200000000d' % 1 }}",
    "{{ '%.200000000f' % 1 }}",
    "{{ '%0200000000d' | format(1) }}",
    "{{ '{:>200000000}'.format(1) }}",
    "{{ '{:>{w}}'.format(1, w=200000000) }}",
    "{{ '{x:0200000000}'.format_map({'x': 1}) }}",
    "{{ ('\t' * 10).expandtabs(20000000) }}",
    "{{ ('x' * 10000).replace('x', 'y' * 10000) }}",
    "{{ ('x' * 10000) | replace('x', 'y' * 10000) }}",
    "{{ ('y' * 10000).join(['x'] * 10000) }}",
    "{{ (['x' * 10000] * 10000) | join }}",
    "{{ ('x' * 5000) | wordwrap(1, wrapstring='y' * 1000) }}",
]


@pytest.mark.parametrize("html", [False, True])
@pytest.mark.parametrize("source", PADDING)
def test_huge_texts_are_refused(source: str, html: bool) -> None:
    message = failure(source, html=html)
    assert message.startswith(OVER) and "characters would pass the 2,000,000 allowed" in message


def test_they_are_refused_before_being_built() -> None:
    tracemalloc.start()
    try:
        for source in PADDING:
            failure(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # not one 200 MB text, nor 100 MB of `replace`


@pytest.mark.parametrize("operator", ["~", "+"])
def test_doubling_a_text_in_a_loop_stops(operator: str) -> None:
    source = (
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}"
        f"{{% set ns.s = ns.s {operator} ns.s %}}{{% endfor %}}{{{{ ns.s | length }}}}"
    )
    assert "characters would pass the 2,000,000 allowed" in failure(source)


@pytest.mark.usefixtures("no_wall_clock_limit")
def test_loops_and_calls_are_counted() -> None:
    nested = "{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}"
    assert failure(nested) == OVER + "more than 100,000 loop items and calls"
    recursive = (
        "{% for x in range(4) recursive %}{% if loop.depth < 9 %}{{ loop(range(4)) }}"
        "{% endif %}{% endfor %}"
    )
    assert failure(recursive) == OVER + "more than 100,000 loop items and calls"
    macro = "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
    assert failure(macro + "{{ m(17) }}") == OVER + "more than 100,000 loop items and calls"


def test_text_captured_in_a_loop_is_paid_for() -> None:
    """Nothing is printed until the end: the loop's own text is counted on each pass."""
    source = "{% set s %}{% for i in range(30000) %}" + "x" * 100 + "{% endfor %}{% endset %}"
    assert "characters would pass the 2,000,000 allowed" in failure(source + "{{ s | length }}")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'abc'.translate({97: 'x' * 10000}) }}", "str.translate() is not allowed"),
        ("{{ 'a'.encode() }}", "str.encode() is not allowed"),
        ("{{ (1).to_bytes(1000, 'big') }}", "int.to_bytes() is not allowed"),
        ("{{ ''.maketrans('a', 'b') }}", "maketrans() is not allowed"),
        ("{{ '%*d' % (20, 1) }}", "a * width in % formatting is not allowed"),
        ("{{ [[1]] | tojson(indent=2000) }}", "tojson's indent must be a number from 0"),
        ("{{ ([[1] * 100] * 100) | sum(start=[]) }}", "sum adds numbers"),
        (
            "{% set ns = namespace(n=2 ** 500) %}{% for i in range(3) %}"
            "{% set ns.n = ns.n * ns.n %}{% endfor %}",
            "the result of * would be too large",
        ),
    ],
)
def test_operations_with_no_use_in_a_message_are_refused(source: str, message: str) -> None:
    assert failure(source).startswith(BLOCKED + message)


def test_placeholder_text_and_urlize_are_gone() -> None:
    with pytest.raises(Exception, match="unknown variable 'lipsum'"):
        compile_template("{{ lipsum(1, min=200000000, max=200000000) }}", html=False)
    with pytest.raises(Exception, match="No filter named 'urlize'"):
        compile_template("{{ 'a b' | urlize(target='x' * 10) }}", html=False)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'x'.ljust(3, '.') }}|{{ 'x' | center(5) }}|{{ '7'.zfill(3) }}", "x..|  x  |007"),
        ("{{ '%05.1f' % 3.14159 }} {{ '%s-%s' | format(1, 2) }}", "003.1 1-2"),
        ("{{ '{:>4}|{:.2f}'.format('a', event.properties.total) }}", "   a|25.00"),
        ("{{ event.properties['items'] | map(attribute='name') | join(', ') }}", "Mug, Bol"),
        (
            "{% for i in event.properties['items'] %}{{ loop.index }}{{ i.name }} {% endfor %}",
            "1Mug 2Bol ",
        ),
        (
            "{{ 'a' ~ 1 ~ 'b' }} {{ 'ab' + 'cd' }} {{ [1] + [2] }} {{ 'ab' * 2 }}",
            "a1b abcd [1, 2] abab",
        ),
        (
            "{{ 'Hello World'.lower().split(' ') | join('-') }} {{ range(3) | sum }}",
            "hello-world 3",
        ),
        (
            "{{ event.properties.get('total') }} {{ profile.traits.keys() | list }}",
            "25 ['first_name']",
        ),
        (
            "{{ 'x\ny' | indent(2, true) }} {{ [1, 2, 3] | batch(2, 0) | list }}",
            "  x\n  y [[1, 2], [3, 0]]",
        ),
    ],
)
def test_ordinary_templates_still_render(source: str, expected: str) -> None:
    assert compile_template(source, html=False).render(CONTEXT) == expected


def test_a_message_over_its_size_limit_is_not_sent() -> None:
    text = compile_template(
        "{% for i in range(11000) %}" + "x" * 100 + "{% endfor %}", html=False
    )  # 1.1 million characters: within one render's budget, over a message's size
    with pytest.raises(TemplateRenderError) as info:
        render_variant("sms", Variant({"text": text}), CONTEXT)
    assert str(info.value) == (
        f"the message is 1,100,000 characters long; at most {MAX_MESSAGE_CHARS:,} may be sent"
    )


def test_an_email_whose_css_would_be_copied_too_often_is_not_inlined() -> None:
    css = "<style>" + "".join(f".never{i} {{ color: red }}" for i in range(2000)) + "</style>"
    html = compile_template(css + "<p>x</p>" * 2000, html=True)
    variant = Variant({"subject": compile_template("S", html=False), "html": html})
    with pytest.raises(TemplateRenderError, match="too much CSS to inline"):
        render_variant("email", variant, CONTEXT)


def test_each_render_has_its_own_budget() -> None:
    template = compile_template("{% for i in range(40000) %}{% endfor %}", html=False)
    for _ in range(3):  # 80,000 steps each: fine alone, over the limit if they added up
        assert template.render(CONTEXT) == ""


def test_a_budget_counts_time_too() -> None:
    """The clock is the last resort for one slow step: past the deadline, any step fails."""
    spent = Budget(Limits(steps=10, chars=10, seconds=-1.0, step_unit="steps"))
    with pytest.raises(OverBudget, match="more than -1 s of work"):
        spent.step()
