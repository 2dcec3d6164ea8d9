"""Message templates: strict but forgiving with `default`, escaped for HTML, sandboxed."""

from __future__ import annotations

import pytest

from app.journeys.templates import TemplateRenderError, TemplateSyntaxError, compile_template

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


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ event.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ '{0.__class__}'.format(event) }}",
        "{{ profile.traits.update({'first_name': 'Mallory'}) }}",
        "{{ event.properties['items'].append(1) }}",
    ],
)
def test_sandbox_escapes_fail_safely(source: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(source)
    assert CONTEXT["profile"]["traits"]["first_name"] == "Alice"  # type: ignore[index]


def test_sandbox_error_says_so() -> None:
    with pytest.raises(TemplateRenderError, match="blocked by the template sandbox"):
        render("{{ ''.__class__.__mro__ }}")


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
    assert (info.value.column, info.value.hint) == (7, "templates can use event, profile")


def test_loop_and_set_variables_are_allowed() -> None:
    source = "{% set n = event.properties.total %}{% for i in range(1) %}{{ n + i }}{% endfor %}"
    assert render(source) == "25"
