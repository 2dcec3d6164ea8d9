"""Links in e-mail HTML: web, mail and phone addresses only, whatever the data says.

Event data comes through the public write key, which any visitor of the shop can read: a
`cart_url` of `javascript:…`, or of a look-alike login page, would otherwise go out in a
branded message. So every address a mail client would follow (`href`, `action`…) must be
`http(s)`, `mailto` or `tel`, every one it loads by itself (`src`, `background`, `srcset`…)
`http(s)`, and a `#fragment` or an empty value stays allowed. The check reads each address as
a mail client does: entities decoded (`javascript&#58;`), surrounding spaces and control
characters dropped, tabs and newlines inside removed (`java&Tab;script:`), the scheme in any
case. An address without a scheme is refused, protocol-relative `//host` included: its
scheme would be whatever the reader's client picks (`file:` in some desktop clients), and an
e-mail has no page address to be relative to.

Where the host of an address comes from data (the `{{ }}` is before the end of the host), and
`CARILLON_LINK_HOSTS` lists hosts, the host must be one of them (`*.shop.example` for any
subdomain); a host written in the template itself is the author's choice and is not checked.

A literal address is checked when the journey is loaded, at its line and column; one built
from data when the message is rendered, so that message fails and says why. To see which
parts of the HTML came from data, every printed value is wrapped in `DATA` (a private-use
character) while rendering, and the wrapping is removed once checked. When loading, the same
character stands for each `{{ }}` so the template reads as HTML; a value from data must then
sit in text or in a quoted attribute value, not in a tag or attribute name nor in an
unquoted value (where a space in the data would start a new attribute).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from jinja2 import Environment

from app.unsubscribe import PLACEHOLDER

DATA = "\ue000"

# Followed when the reader clicks (or submits); loaded by the client on its own.
_FOLLOWED = frozenset({"href", "xlink:href", "action", "formaction"})
_LOADED = frozenset(
    {"src", "background", "poster", "data", "lowsrc", "dynsrc", "longdesc", "cite"}
    | {"codebase", "manifest"}
)
_LISTS = {"srcset": ",", "ping": None}  # several addresses: comma- or space-separated
_ADDRESS_ATTRIBUTES = _FOLLOWED | _LOADED
_FOLLOWED_SCHEMES = ("http", "https", "mailto", "tel")
_LOADED_SCHEMES = ("http", "https")

_EDGES = "".join(map(chr, range(0x21)))  # C0 controls and space, dropped at both ends
_INSIDE = re.compile(r"[\t\n\r]")  # dropped anywhere
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_AUTHORITY_END = re.compile(r"[/\\?#]")
_PERCENT = re.compile(r"%([0-9a-fA-F]{2})")


class UnsafeLink(ValueError):
    """A refused address; `line`/`column` (1-based, in the template) when known at load."""

    def __init__(self, message: str, hint: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.line = line
        self.column = column


_HINT = "write the full address, e.g. https://shop.example/cart"


# --- render time ---------------------------------------------------------------------------


def checked(html: str, hosts: tuple[str, ...]) -> str:
    """The rendered HTML without the `DATA` marks, once every address in it is allowed;
    `hosts`: `link_hosts(CARILLON_LINK_HOSTS)`, empty for any host."""
    for found in _parsed(html).found:
        problem = _refusal(found.tag, found.attribute, found.value)
        if problem is None and hosts and _host_from_data(found.value):
            problem = _host_refusal(found, hosts)
        if problem is not None:
            raise UnsafeLink(problem, _HINT)
    return html.replace(DATA, "")


def link_hosts(setting: str) -> tuple[str, ...]:
    """`CARILLON_LINK_HOSTS`: comma-separated host names, `*.shop.example` for subdomains."""
    return tuple(host.strip().lower().rstrip(".") for host in setting.split(",") if host.strip())


def _host_from_data(marked: str) -> bool:
    """Whether data wrote any part of the address up to the end of its host."""
    text = _INSIDE.sub("", marked)
    plain = text.replace(DATA, "")
    lead = len(plain) - len(plain.lstrip(_EDGES))
    head = lead + _head_length(plain[lead:])
    first = text.find(DATA)  # also how many characters are before it
    return 0 <= first < head


def _head_length(url: str) -> int:
    """The length of `scheme://user@host:port` at the start of `url`."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    while start < len(url) and url[start] in "/\\":
        start += 1
    end = _AUTHORITY_END.search(url, start)
    return end.start() if end else len(url)


def _host(url: str) -> str:
    """The host as a browser reads it: after `user@`, before `:port`, percent-escapes decoded,
    lowercase, an international name in its ASCII form. Empty if there is none."""
    scheme = _SCHEME.match(url)
    authority = url[scheme.end() if scheme else 0 : _head_length(url)].lstrip("/\\")
    host = authority.rpartition("@")[2]
    if not host.startswith("["):  # an IPv6 address keeps its colons
        host = host.partition(":")[0]
    host = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), host)
    try:
        return host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return host.lower().rstrip(".")


def _host_refusal(found: _Address, hosts: tuple[str, ...]) -> str | None:
    url = _normalized(found.value.replace(DATA, ""))
    scheme = _SCHEME.match(url)
    if scheme is None or scheme.group(1).lower() not in ("http", "https"):
        return None
    host = _host(url)
    for allowed in hosts:
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return None
    return (
        f"<{found.tag} {found.attribute}> points to {host}, a host taken from the data that "
        f"is not in CARILLON_LINK_HOSTS ({', '.join(hosts)})"
    )


# --- load and render time ------------------------------------------------------------------


def _normalized(url: str) -> str:
    return _INSIDE.sub("", url).strip(_EDGES)


def _refusal(tag: str, attribute: str, value: str) -> str | None:
    """Why a mail client must not get this address (None: it may), whatever wrote it."""
    followed = attribute in _FOLLOWED
    schemes = _FOLLOWED_SCHEMES if followed else _LOADED_SCHEMES
    url = _normalized(value.replace(DATA, ""))
    where = f"<{tag} {attribute}>"
    if not url or (followed and (url.startswith("#") or url == PLACEHOLDER)):
        return None
    scheme = _SCHEME.match(url)
    if scheme is None:
        if url[:2].replace("\\", "/") == "//":
            return (
                f"{where} is protocol-relative ({_short(url)}): the reader's mail client "
                "would choose its scheme"
            )
        return f"{where} {_short(url)} is not a full address (an e-mail has no page address)"
    name = scheme.group(1).lower()
    if name not in schemes:
        role = "links" if followed else "images and other loaded resources"
        return f"{where} uses the {name}: scheme; {role} may only use {', '.join(schemes)}"
    if name in ("http", "https") and not _host(url):
        return f"{where} {_short(url)} has no host"
    return None


def _short(url: str) -> str:
    return repr(url if len(url) <= 60 else url[:57] + "...")


@dataclass(frozen=True)
class _Address:
    tag: str
    attribute: str
    value: str  # entities decoded, `DATA` marks kept
    line: int  # 1-based, where the value is written
    column: int
    quoted: bool


class _Attributes(HTMLParser):
    """The address attributes of every start tag, with where each is written; and the tags
    with `DATA` in their name or in an attribute name."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[_Address] = []
        self.names: list[tuple[int, int]] = []  # where a tag with data in a name starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        line, offset = self.getpos()
        if DATA in tag or any(DATA in name for name, _ in attrs):
            self.names.append((line, offset + 1))
        for name, value in attrs:
            if value is None or (name not in _ADDRESS_ATTRIBUTES and name not in _LISTS):
                continue
            at = re.search(rf"(?<![\w:-]){re.escape(name)}\s*=\s*(['\"]?)", raw, re.I)
            start = at.end() if at else 0
            before = raw[:start]
            row = line + before.count("\n")
            column = start - before.rfind("\n") if "\n" in before else offset + start + 1
            quoted = bool(at and at.group(1))
            for item in _split(name, value):
                self.found.append(_Address(tag, name, item, row, column, quoted))

    handle_startendtag = handle_starttag


def _split(attribute: str, value: str) -> list[str]:
    """The addresses in an attribute: `srcset` lists `url 2x, url 3x`, `ping` `url url`."""
    if attribute not in _LISTS:
        return [value]
    candidates = value.split(_LISTS[attribute])
    return [words[0] if _LISTS[attribute] else c for c in candidates if (words := c.split())]


def _parsed(html: str) -> _Attributes:
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return parser


# --- load time -----------------------------------------------------------------------------


def check_source(source: str, environment: Environment) -> None:
    """Refuse, at its line and column, a literal address a mail client must not get, and a
    `{{ }}` where data could write a tag or an attribute of its own."""
    skeleton = _skeleton(source, environment)
    parsed = _parsed(skeleton)
    named = parsed.names + _positions(skeleton, _DATA_TAG)
    if named:
        line, column = min(named)
        raise UnsafeLink(
            "a value from data cannot write a tag or an attribute name",
            "put it in the text or inside a quoted attribute value",
            line,
            column,
        )
    for found in parsed.found:
        problem, hint = None, _HINT
        if DATA not in found.value:
            problem = _refusal(found.tag, found.attribute, found.value)
        elif not found.quoted:
            problem = (
                f"<{found.tag} {found.attribute}> holds a value from data without quotes: a "
                "space in it would start another attribute"
            )
            hint = f'write {found.attribute}="{{{{ ... }}}}"'
        elif _decided(prefix := found.value.split(DATA, 1)[0]):
            problem = _refusal(found.tag, found.attribute, prefix + "x")
        if problem is not None:
            raise UnsafeLink(problem, hint, found.line, found.column)


def _decided(prefix: str) -> bool:
    """Whether the literal start of an address already tells its scheme, or that it has none."""
    start = _normalized(prefix)
    return bool(_SCHEME.match(start)) or start[:1] in ("/", "\\", "#")


_DATA_TAG = re.compile("</?" + DATA)


def _positions(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    found = []
    for match in pattern.finditer(text):
        before = text[: match.start()]
        found.append((before.count("\n") + 1, match.start() - before.rfind("\n")))
    return found


def _skeleton(source: str, environment: Environment) -> str:
    """The template's text as the HTML it renders to, positions kept: each `{{ }}` becomes as
    many `DATA` characters, each `{% %}` and `{# #}` as many spaces (newlines stay)."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    pieces: list[str] = []
    cursor = 0
    mark = ""  # inside `{{ }}`, `{% %}` or `{# #}`: what its characters become
    for _, kind, value in environment.lexer.tokeniter(text, None):
        start = text.find(value, cursor)
        if start < 0:  # the lexer only ever drops whitespace: this would be a new Jinja
            return text
        pieces.append(text[cursor:start])
        if kind == "variable_begin":
            mark = DATA
        elif kind in ("block_begin", "comment_begin", "raw_begin", "raw_end"):
            mark = " "
        pieces.append(re.sub(r"[^\n]", mark, value) if mark else value)
        if kind in ("variable_end", "block_end", "comment_end", "raw_begin", "raw_end"):
            mark = ""
        cursor = start + len(value)
    pieces.append(text[cursor:])
    return "".join(pieces)
