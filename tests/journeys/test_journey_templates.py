"""Message templates: strict but forgiving with `default`, escaped for HTML, sandboxed."""

from __future__ import annotations

import pytest

from app.journeys.templates import (
    VARIABLES,
    TemplateRenderError,
    TemplateSyntaxError,
    compile_template,
)

CONTEXT = {
    "event": {"properties": {"total": 25, "items": [{"name": "Mug"}]}, "userId": "u1"},
    "profile": {"id": "p1", "traits": {"first_name": "Alice", "nickname": None}},
}


def render(source: str, *, html: bool = False) -> str:
    return compile_template(source, html=html).render(CONTEXT)


def test_source_and_plain_rendering() -> None:
    template = compile_template("Hi {{ profile.traits.first_name }}", html=False)
    assert template.source == "Hi {{ profile.traits.first_name }}"
    assert template.render(CONTEXT) == "Hi Alice"
    assert render("{% for i in event.properties['items'] %}{{ i.name }}{% endfor %}") == "Mug"


def test_default_covers_missing_keys_levels_and_nulls() -> None:
    assert render("{{ profile.traits.last_name | default('x') }}") == "x"
    assert render("{{ profile.address.city | default('x') }}") == "x"
    assert render("{{ profile.traits.nickname | default('x') }}") == "x"
    assert render("{% if profile.traits.last_name is defined %}y{% else %}n{% endif %}") == "n"


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("{{ profile.traits.last_name }}", "profile.traits.last_name"),
        ("{{ profile.address.city }}", "profile.address.city"),
        ("{{ event.properties['items'][3].name }}", "event.properties.items[3].name"),
        ("{{ profile.traits.nickname }}", "profile.traits.nickname"),
    ],
)
def test_undefined_names_the_full_path(source: str, path: str) -> None:
    with pytest.raises(TemplateRenderError) as info:
        render(source)
    assert str(info.value).startswith(f"{path} is undefined")


def test_html_autoescapes_text_does_not() -> None:
    context = {"event": {"properties": {"note": "<b>hi</b> & 'bye'"}}, "profile": {}}
    source = "{{ event.properties.note }}"
    assert compile_template(source, html=True).render(context) == (
        "&lt;b&gt;hi&lt;/b&gt; &amp; &#39;bye&#39;"
    )
    assert compile_template(source, html=False).render(context) == "<b>hi</b> & 'bye'"


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ event.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ event['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ event.properties['items']|map(attribute='__class__')|list }}",
    "{{ '{0.__class__}'.format(event) }}",
    "{{ range.__self__ }}",
    "{{ profile.traits.update({'first_name': 'Mallory'}) }}",
    "{{ event.properties['items'].append(1) }}",
    "{% include 'secrets.txt' %}",
    "{% from 'x' import y %}",
    "{{ ''|attr('__cla' ~ 'ss__') }}",  # seen once Jinja has folded the constants
]


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_attempts_are_refused_at_load(source: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template(source, html=False)
    assert info.value.hint and "profile" in info.value.hint


def test_the_load_error_points_at_the_first_internal_name() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template("Hi\n{{ ''.__class__.__mro__ }}", html=False)
    assert (info.value.line, info.value.column) == (2, 7)
    assert info.value.message == "'__class__' is internal to Python: templates cannot use it"


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.properties.total|replace('_', ' ') }}",
        "{{ '{:.2f}'.format(event.properties.total) }}",
        "{{ event.properties['items']|map(attribute='name')|join(', ') }}",
        "{% set ns = namespace(n=0) %}{% set ns.n = 1 %}{{ ns.n }}",
    ],
)
def test_ordinary_templates_are_not_mistaken_for_escapes(source: str) -> None:
    compile_template(source, html=False).render(CONTEXT)


# Names built at render time (or taken from the data) get past the load-time check: the
# sandbox is what stops them.
BUILT_AT_RENDER = [
    "{% set n = '__cla' ~ 'ss__' %}{{ ''|attr(n) }}",
    "{% set n = '__glo' ~ 'bals__' %}{{ range|attr(n) }}",
    "{{ event[event.properties.key] }}",
    "{% set f = '{0.' ~ '__class__}' %}{{ f.format(event) }}",
    "{% set m = 'upd' ~ 'ate' %}{{ (profile.traits|attr(m))({'first_name': 'Mallory'}) }}",
]


@pytest.mark.parametrize("source", BUILT_AT_RENDER)
def test_escapes_built_at_render_time_fail_safely(source: str) -> None:
    context = {**CONTEXT, "event": {"properties": {"key": "__class__"}}}
    template = compile_template(source, html=False)
    with pytest.raises(TemplateRenderError, match="blocked by the template sandbox"):
        template.render(context)
    assert CONTEXT["profile"]["traits"]["first_name"] == "Alice"  # type: ignore[index]


def test_render_time_sandbox_error_says_so() -> None:
    with pytest.raises(TemplateRenderError, match="blocked by the template sandbox"):
        compile_template("{% set f = '{0.__class__}' %}{{ f.format(event) }}", html=False).render(
            CONTEXT
        )
    assert CONTEXT["profile"]["traits"]["first_name"] == "Alice"  # type: ignore[index]


@pytest.mark.parametrize(
    "source", ["{{ 'a' * 1000000000 }}", "{{ [1] * 100000000 }}", "{{ 10 ** 100000 }}"]
)
def test_huge_products_are_refused_without_being_computed(source: str) -> None:
    template = compile_template(source, html=False)  # not folded at load either
    with pytest.raises(TemplateRenderError, match="blocked by the template sandbox"):
        template.render(CONTEXT)
    assert compile_template("{{ 'ab' * 3 }}{{ 2 ** 10 }}", html=False).render(CONTEXT) == (
        "ababab1024"
    )


def test_a_plain_text_template_knows_its_literal_text() -> None:
    assert compile_template("Bienvenue !", html=False).literal == "Bienvenue !"
    assert compile_template("Hi {{ profile.id }}", html=False).literal is None
    assert compile_template("{% if true %}x{% endif %}", html=False).literal is None


def test_runtime_errors_become_render_errors() -> None:
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError"):
        render("{{ event.properties.total / 0 }}")


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("Hi {{ profile.id }", 1, "unexpected '}'"),
        ("line one\n{% if event.x %}", 2, "Unexpected end of template"),
        ("{{ event.x | defualt('a') }}", 1, "No filter named 'defualt'."),
        ("a\n\n{{ profil.email }}", 3, "unknown variable 'profil' in template"),
    ],
)
def test_syntax_errors(source: str, line: int, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template(source, html=False)
    assert info.value.line == line
    assert info.value.message.startswith(message)


def test_unknown_variable_has_a_column_and_hint() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template("Hi {{ user.name }}", html=True)
    assert (info.value.column, info.value.hint) == (7, f"templates can use {', '.join(VARIABLES)}")


def test_loop_and_set_variables_are_allowed() -> None:
    source = "{% set n = event.properties.total %}{% for i in range(1) %}{{ n + i }}{% endfor %}"
    assert render(source) == "25"
