"""Links in e-mail HTML: only web, mail and phone addresses, however the data disguises them;
a host taken from data only among CARILLON_LINK_HOSTS when it is set."""

from __future__ import annotations

from typing import Any

import pytest

from app.journeys.language.files import JourneyInvalid, parse_journey
from app.journeys.templates import TemplateRenderError, TemplateSyntaxError, compile_template
from app.unsubscribe import PLACEHOLDER

LINK = (
    "<p><a href='{{ event.properties.url }}'>panier</a><img src=\"{{ event.properties.img }}\"></p>"
)


def data(url: str = "https://shop.example/c/1", img: str = "https://img.cdn.example/i.png") -> Any:
    return {"event": {"properties": {"url": url, "img": img}}, "profile": {"traits": {}}}


def render(url: str, source: str = LINK, hosts: tuple[str, ...] = ()) -> str:
    return compile_template(source, html=True).render(data(url), hosts)


def refusal(url: str, source: str = LINK, hosts: tuple[str, ...] = ()) -> str:
    with pytest.raises(TemplateRenderError) as info:
        render(url, source, hosts)
    return str(info.value)


ALLOWED_SCHEMES = "links may only use http, https, mailto, tel"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "  \x01\x08javascript:alert(1)",  # leading spaces and control characters
        "java\tscript:alert(1)",  # tabs and newlines inside are dropped by browsers
        "java\nscript:alert(1)",
        "javascript:alert(1)\x00 ",
    ],
)
def test_a_javascript_link_from_data_is_refused(url: str) -> None:
    assert refusal(url) == f"<a href> uses the javascript: scheme; {ALLOWED_SCHEMES}"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("data:text/html;base64,PHNjcmlwdD4=", "data"),
        ("vbscript:msgbox(1)", "vbscript"),
        ("file:///etc/passwd", "file"),
        ("sms:+33600000000", "sms"),
    ],
)
def test_other_schemes_are_refused_and_named(url: str, scheme: str) -> None:
    assert refusal(url) == f"<a href> uses the {scheme}: scheme; {ALLOWED_SCHEMES}"


def test_entities_are_read_as_a_mail_client_reads_them() -> None:
    """Escaped data cannot form an entity; written raw (`| safe`), entities are decoded."""
    escaped = "javascript&#58;alert(1)"  # autoescaped: the text `&#58;`, no scheme at all
    assert "is not a full address" in refusal(escaped)
    raw = "<a href='{{ event.properties.url | safe }}'>x</a>"
    for url in ["javascript&#58;alert(1)", "&#x6A;avascript&colon;alert(1)", "java&Tab;script:x"]:
        assert refusal(url, raw) == f"<a href> uses the javascript: scheme; {ALLOWED_SCHEMES}"


@pytest.mark.parametrize(
    "url", ["//evil.example/login", "\\\\evil.example/login", "/\\evil.example"]
)
def test_protocol_relative_links_are_refused(url: str) -> None:
    assert "is protocol-relative" in refusal(url)


@pytest.mark.parametrize("url", ["/cart/1", "cart/1", "evil.example/login"])
def test_relative_links_are_refused(url: str) -> None:
    assert refusal(url).endswith("is not a full address (an e-mail has no page address)")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/c/1?a=1&b=2",
        "HTTP://Shop.Example/c/1",
        " https://shop.example/c/1 ",
        "mailto:service@shop.example",
        "tel:+33612345678",
        "#details",
        "",
    ],
)
def test_web_mail_and_phone_links_are_sent(url: str) -> None:
    assert "panier" in render(url)


def test_a_loaded_resource_must_be_on_the_web() -> None:
    source = "<img src='{{ event.properties.url }}'>"
    for url in ["mailto:a@shop.example", "#top", "cid:logo"]:
        assert refusal(url, source).startswith("<img src> ")
    assert render("https://cdn.example/logo.png", source)
    srcset = "<img srcset='https://cdn.example/1.png 1x, {{ event.properties.url }} 2x'>"
    assert "uses the javascript: scheme" in refusal("javascript:alert(1)", srcset)
    background = '<table background="{{ event.properties.url }}"></table>'
    assert refusal("javascript:x", background).startswith("<table background> uses the javascript")


def test_the_unsubscribe_link_is_left_for_the_adapter() -> None:
    html = compile_template("<a href='{{ unsubscribe_url }}'>stop</a>", html=True)
    rendered = html.render({**data(), "unsubscribe_url": PLACEHOLDER}, ("shop.example",))
    assert rendered == f"<a href='{PLACEHOLDER}'>stop</a>"


def test_no_mark_of_the_check_is_left_in_the_message() -> None:
    rendered = render("https://shop.example/c/1")
    assert rendered == (
        "<p><a href='https://shop.example/c/1'>panier</a>"
        '<img src="https://img.cdn.example/i.png"></p>'
    )
    assert all(ord(char) < 0xE000 for char in rendered)


# --- hosts -----------------------------------------------------------------------------------

HOSTS = ("shop.example", "*.cdn.example")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://evil.example/login", "evil.example"),
        ("https://shop.example@evil.example/", "evil.example"),  # user info, then the host
        ("https://shop.example.evil.example/", "shop.example.evil.example"),
        ("https://%65vil.example/", "evil.example"),  # percent-escaped host
        ("https://shop.example:443@evil.example", "evil.example"),
        ("https:evil.example", "evil.example"),  # browsers add the missing slashes
        ("https://ѕhop.example/", "xn--hop-"),  # Cyrillic ѕ
    ],
)
def test_a_host_from_data_must_be_listed(url: str, host: str) -> None:
    message = refusal(url, hosts=HOSTS)
    assert message.startswith(f"<a href> points to {host}")
    assert message.endswith(
        "a host taken from the data that is not in CARILLON_LINK_HOSTS "
        "(shop.example, *.cdn.example)"
    )


def test_listed_hosts_and_their_listed_subdomains_pass() -> None:
    assert render("https://shop.example/c/1", hosts=HOSTS)
    assert render("HTTPS://SHOP.EXAMPLE./c/1", hosts=HOSTS)
    assert render("https://shop.example:8443/c/1", hosts=HOSTS)
    assert render("mailto:someone@anywhere.example", hosts=HOSTS)  # no host to follow
    images = "<img src='{{ event.properties.url }}'>"
    assert render("https://eu.cdn.example/i.png", images, hosts=HOSTS)
    assert "cdn.example" in refusal("https://cdn.example/i.png", images, hosts=HOSTS)
    assert "www.shop.example" in refusal("https://www.shop.example/", hosts=HOSTS)


def test_a_host_written_in_the_template_is_the_authors_choice() -> None:
    path_from_data = "<a href='https://partner.example/c/{{ event.properties.url }}'>x</a>"
    assert render("1", path_from_data, hosts=HOSTS) == "<a href='https://partner.example/c/1'>x</a>"
    # ... but not when the data goes on writing the host.
    glued = "<a href='https://shop.example{{ event.properties.url }}'>x</a>"
    assert "shop.example.evil.example" in refusal(".evil.example/", glued, hosts=HOSTS)
    assert render("/c/1", glued, hosts=HOSTS)


# --- at load ---------------------------------------------------------------------------------


def load_error(source: str) -> TemplateSyntaxError:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template(source, html=True)
    return info.value


@pytest.mark.parametrize(
    ("source", "position", "message"),
    [
        ("<a href='javascript:alert(1)'>x</a>", (1, 10), "<a href> uses the javascript: scheme"),
        ('<p>\n  <a\n   HREF="JAVA&#x09;SCRIPT&#58;x">', (3, 10), "<a href> uses the javascript:"),
        ("<a href='//shop.example/c'>x</a>", (1, 10), "<a href> is protocol-relative"),
        ("<img src='cid:logo'>", (1, 11), "<img src> uses the cid: scheme"),
        ("<a href='javascript:{{ event.x }}'>x</a>", (1, 10), "<a href> uses the javascript:"),
        ("<a href='//{{ event.x }}'>x</a>", (1, 10), "<a href> is protocol-relative"),
        ("<a href={{ event.x }}>x</a>", (1, 9), "<a href> holds a value from data without quotes"),
        ("<a {{ event.x }}>x</a>", (1, 1), "a value from data cannot write a tag or an attribute"),
        ("<{{ event.x }} href='https://a.example'>", (1, 1), "a value from data cannot write"),
        ("{% raw %}<a href='javascript:x'>{% endraw %}", (1, 19), "<a href> uses the javascript"),
    ],
)
def test_what_is_wrong_in_the_template_itself_is_refused_at_load(
    source: str, position: tuple[int, int], message: str
) -> None:
    error = load_error(source)
    assert ((error.line, error.column), error.message[: len(message)]) == (position, message)


@pytest.mark.parametrize(
    "source",
    [
        "<a href='https://shop.example/c/{{ event.x }}'>x</a><a href='#top'>top</a>",
        '<a href="{% if event.x %}https://a.example{% else %}#b{% endif %}">x</a>',
        "<a {% if event.x %}target=\"_blank\"{% endif %} href='mailto:a@b.example'>x</a>",
        "<a href='{{ unsubscribe_url }}'>stop</a><a href=''>x</a><a href='tel:+331'>t</a>",
        "<p title='{{ event.x }}'>{{ event.x }}</p><!-- {{ event.x }} -->",
    ],
)
def test_ordinary_html_loads(source: str) -> None:
    compile_template(source, html=True)


def test_validation_points_at_the_link_in_the_file() -> None:
    text = (
        "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\nsteps:\n"
        "  - send:\n      channel: email\n      subject: Hi\n      text: Hi\n"
        "      html: \"<p>Bonjour <a href='jAvAscript:go()'>ici</a></p>\"\n"
    )
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(text, "j.yaml")
    [issue] = info.value.issues
    assert str(issue) == (
        f"j.yaml:10:34: html: <a href> uses the javascript: scheme; "
        f"{ALLOWED_SCHEMES} (hint: write the full address, e.g. https://shop.example/cart)"
    )
