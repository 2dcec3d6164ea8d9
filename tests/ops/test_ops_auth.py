"""Who may see and steer the queues: the admin token, the dashboard's login cookie, and the
health endpoints that need no token."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dramatiq.brokers.redis import RedisBroker
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from app import clock
from app.ops import auth, health, throttle
from app.settings import get_settings
from tests.helpers import TOKEN, bearer

PROTECTED = [
    ("GET", "/ops/queues"),
    ("GET", "/ops/dead-letters"),
    ("POST", "/ops/dead-letters/1/replay"),
    ("GET", "/ops/deliveries/1"),
    ("GET", "/ops/journeys"),
    ("GET", "/ops/channels"),
    ("GET", "/ops/segments"),
    ("GET", "/ops/summary"),
    ("GET", "/ops/budgets"),
    ("GET", "/ops/panels"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_configured_means_closed_with_a_clear_message(
    client: TestClient, no_admin: None, method: str, path: str
) -> None:
    answer = client.request(method, path, headers=bearer("anything"))
    assert answer.status_code == 503
    assert "set CARILLON_ADMIN_TOKEN" in answer.json()["detail"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_or_wrong_token_is_refused(
    client: TestClient, admin: str, method: str, path: str
) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing admin token" in missing.json()["detail"]
    wrong = client.request(method, path, headers=bearer(TOKEN + "x"))
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "wrong admin token"
    basic = client.request(method, path, headers={"Authorization": "Basic b3BzOg=="})
    assert basic.status_code == 401
    assert "Bearer" in basic.json()["detail"]
    empty = client.request(method, path, headers={"Authorization": "Bearer "})
    assert empty.status_code == 401


def test_the_right_token_opens_the_api(client: TestClient, admin: str) -> None:
    assert client.get("/ops/queues", headers=bearer()).status_code == 200
    assert client.get("/metrics", headers=bearer()).status_code == 200


def test_dashboard_without_a_session_goes_to_the_login_form(client: TestClient, admin: str) -> None:
    answer = client.get("/ops", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ops/login"
    form = client.get("/ops/login")
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'type="password"' in form.text


def test_dashboard_with_no_token_configured_says_how_to_enable_it(
    client: TestClient, no_admin: None
) -> None:
    page = client.get("/ops")
    assert page.status_code == 503
    assert "set CARILLON_ADMIN_TOKEN" in page.text
    login = client.post("/ops/login", data={"token": "guess"})
    assert login.status_code == 503
    assert auth.COOKIE not in login.cookies


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"token": "not-it"}, 401, "wrong admin token"),
        ({"token": ""}, 400, "enter the admin token"),
        ({}, 400, "enter the admin token"),
    ],
)
def test_login_refuses_a_bad_token(
    client: TestClient, admin: str, body: dict[str, str], status: int, says: str
) -> None:
    answer = client.post("/ops/login", data=body, follow_redirects=False)
    assert answer.status_code == status
    assert says in answer.text
    assert "set-cookie" not in answer.headers


def test_login_rejects_an_oversized_or_malformed_form(client: TestClient, admin: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    huge = client.post("/ops/login", content=b"token=" + b"a" * 10_000, headers=form)
    assert huge.status_code == 400
    binary = client.post("/ops/login", content=b"token=\xff\xfe", headers=form)
    assert binary.status_code == 400


def test_login_sets_a_strict_http_only_cookie_that_opens_the_dashboard(
    client: TestClient, admin: str
) -> None:
    answer = client.post("/ops/login", data={"token": TOKEN}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ops"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/ops" in cookie
    assert TOKEN not in cookie  # a signature, not the token itself

    page = client.get("/ops")
    assert page.status_code == 200
    assert "Queues" in page.text and "Dead letters" in page.text
    assert client.get("/ops/queues").status_code == 200  # the JSON API takes the cookie too

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None, "the log-out form carries its token"
    out = client.post("/ops/logout", data={"csrf": csrf[1]}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/ops", follow_redirects=False).status_code == 303


def test_a_browser_session_must_send_the_ops_header_to_change_anything(
    client: TestClient, admin: str
) -> None:
    client.post("/ops/login", data={"token": TOKEN})
    forged = client.post("/ops/dead-letters/12345/replay")
    assert forged.status_code == 403
    assert auth.CSRF_HEADER in forged.json()["detail"]
    real = client.post("/ops/dead-letters/12345/replay", headers={auth.CSRF_HEADER: "1"})
    assert real.status_code == 404  # past the check: that delivery does not exist


def test_tampered_expired_or_stale_cookies_are_refused(
    client: TestClient, admin: str, settings_env: pytest.MonkeyPatch
) -> None:
    good = auth.session_cookie(TOKEN)
    assert auth.cookie_valid(good)
    expires, _, signature = good.partition(".")
    assert not auth.cookie_valid(f"{int(expires) + 3600}.{signature}")  # extended by hand
    assert not auth.cookie_valid(good, now=int(expires) + 1)  # expired
    assert not auth.cookie_valid("garbage")
    assert not auth.cookie_valid("")

    client.cookies.set(auth.COOKIE, good, path="/ops")
    assert client.get("/ops/queues").status_code == 200
    settings_env.setenv("CARILLON_ADMIN_TOKEN", "a-new-token-after-rotation")
    get_settings.cache_clear()
    assert client.get("/ops/queues").status_code == 401  # rotating the token logs out


def test_healthz_needs_nothing_and_readyz_checks_database_and_broker(
    client: TestClient, no_admin: None
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_answers_503_naming_what_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(health, "get_engine", lambda: unreachable)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["database"].startswith("unreachable: OperationalError")
    assert body["reason"].startswith("database unreachable")

    dead_broker = RedisBroker(url="redis://127.0.0.1:1/0", namespace="carillon-test")
    monkeypatch.setattr(health, "get_broker", lambda: dead_broker)
    both = client.get("/readyz").json()
    assert both["checks"]["broker"].startswith("unreachable: ConnectionError")
    assert "database unreachable" in both["reason"] and "broker unreachable" in both["reason"]


def test_wrong_tokens_are_throttled_per_address_then_allowed_again(
    client: TestClient, admin: str, manual_clock: clock.ManualClock
) -> None:
    for _ in range(throttle.MAX_FAILURES):
        assert client.post("/ops/login", data={"token": "guess"}).status_code == 401
    # The right token does not help while throttled: nothing is compared any more.
    blocked = client.post("/ops/login", data={"token": TOKEN}, follow_redirects=False)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) == 60
    assert "too many wrong admin tokens" in blocked.text
    api = client.get("/ops/queues", headers=bearer())
    assert api.status_code == 429  # the bearer API shares the count
    manual_clock.advance(throttle.WINDOW + timedelta(seconds=1))
    answer = client.post("/ops/login", data={"token": TOKEN}, follow_redirects=False)
    assert answer.status_code == 303


def test_log_out_needs_the_form_token_of_this_session(client: TestClient, admin: str) -> None:
    client.post("/ops/login", data={"token": TOKEN})
    for body in ({}, {"csrf": "forged"}):
        refused = client.post("/ops/logout", data=body, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/ops", follow_redirects=False).status_code == 200  # still in
    cross = client.post(
        "/ops/logout",
        data={"csrf": auth.form_token(_request_with(client))},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403


def test_a_login_form_posted_from_another_site_is_refused(client: TestClient, admin: str) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post(
            "/ops/login", data={"token": TOKEN}, headers=headers, follow_redirects=False
        )
        assert answer.status_code == 403
        assert auth.COOKIE not in answer.headers.get("set-cookie", "")


def test_trailing_slash_redirect_never_echoes_the_host_header(
    client: TestClient, admin: str
) -> None:
    answer = client.get("/ops/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "/ops"
    other = client.get("/healthz/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert "evil.example" not in other.headers.get("location", "")


def test_sessions_are_signed_with_the_secret_key(
    client: TestClient, admin: str, settings_env: pytest.MonkeyPatch
) -> None:
    """A cookie made under another CARILLON_SECRET_KEY, with the same admin token, is refused:
    the admin token alone no longer forges sessions."""
    good = auth.session_cookie(TOKEN)
    settings_env.setenv("CARILLON_SECRET_KEY", "another-secret-key-0123456789")
    get_settings.cache_clear()
    assert not auth.cookie_valid(good)
    assert auth.cookie_valid(auth.session_cookie(TOKEN))


def _request_with(client: TestClient) -> Request:
    """A request carrying the client's cookies, to compute the form token a page would show."""
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    return Request({"type": "http", "headers": [(b"cookie", cookie.encode())]})
