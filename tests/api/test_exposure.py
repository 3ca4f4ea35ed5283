"""API keys route by route, the login cookie, per-client limits, the body cap, CORS,
/metrics and the access log: the app in-process (or under uvicorn in a thread, where real
concurrency or a chunked body matters) against the fake upstream."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from langserve_logprobs.auth import PUBLIC_PATHS, PUBLIC_PREFIXES, is_public
from langserve_logprobs.settings import Settings
from server import create_app
from tests.helpers import fake_upstream_settings, invoke_body, sse_events
from tests.servers import run_server

KEY = "svc-key-0123456789abcdef"
OTHER = "svc-key-second-abcdef012"
BODY = invoke_body("ok")


def auth_settings(upstream: Any, **overrides: Any) -> Settings:
    return fake_upstream_settings(upstream, api_keys=f"{KEY},{OTHER}", **overrides)


@pytest.fixture(scope="module")
def embedded_app() -> Any:
    """The app with the embedded model mounted (never loaded: no lifespan runs), keys on."""
    return create_app(Settings(api_keys=KEY, _env_file=None))


def concrete_requests(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) for every route of ``app``, path parameters filled in."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/ui/static":
            yield "GET", route.path + "/app.js"
            continue
        if isinstance(route, Mount):
            yield "GET", route.path + "/v1/models"
            yield "POST", route.path + "/v1/chat/completions"
            continue
        assert isinstance(route, Route), route
        path = route.path.replace("{file_path:path}", "index.html").replace("{config_hash}", "abc")
        path = path.replace("{name}", "some-name")
        assert "{" not in path, f"fill in the parameters of {route.path}"
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                yield method, path


def test_every_route_but_the_public_ones_needs_a_key(embedded_app: Any) -> None:
    requests = list(concrete_requests(embedded_app))
    paths = {path for _, path in requests}
    # the ones the issue names, so that a rename cannot make this test vacuous
    for expected in (
        "/generate/invoke", "/generate/batch", "/generate/stream", "/generate/stream_log",
        "/generate/stream_events", "/generate/input_schema", "/generate/output_schema",
        "/generate/config_schema", "/generate/playground/index.html", "/chat/invoke",
        "/docs", "/openapi.json", "/metrics", "/local/v1/models",
        "/local/v1/chat/completions", "/ui/static/app.js", "/healthz",
    ):  # fmt: skip
        assert expected in paths, expected
    client = TestClient(embedded_app, raise_server_exceptions=False)
    checked = 0
    for method, path in requests:
        response = client.request(method, path, json={})
        if is_public(path):  # (POST /login without a key answers its form again, 401)
            assert "www-authenticate" not in response.headers, (method, path)
            continue
        checked += 1
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"]["type"] == "unauthorized", (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = client.request(method, path, json={}, headers={"X-API-Key": KEY + "x"})
        assert wrong.status_code == 401, (method, path)
        assert KEY not in wrong.text
    assert checked > 40


def test_only_health_login_and_the_ui_shell_are_public() -> None:
    assert {"/healthz", "/login", "/logout", "/ui", "/ui/"} == PUBLIC_PATHS
    assert PUBLIC_PREFIXES == ("/ui/static/",)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": f"Bearer {KEY}"}, id="bearer"),
        pytest.param({"authorization": f"bearer {OTHER}"}, id="bearer-lowercase-second-key"),
        pytest.param({"X-API-Key": KEY}, id="x-api-key"),
    ],
)
def test_a_valid_key_in_either_header_opens_every_endpoint(
    fake_upstream: Any, headers: dict[str, str]
) -> None:
    with TestClient(create_app(auth_settings(fake_upstream)), headers=headers) as client:
        assert client.post("/generate/invoke", json=BODY).status_code == 200
        batch = {"inputs": [{"prompt": "a"}], "config": BODY["config"]}
        assert client.post("/generate/batch", json=batch).status_code == 200
        for kind in ("stream", "stream_log", "stream_events"):
            response = client.post(f"/generate/{kind}", json=BODY)
            assert response.status_code == 200, kind
            assert any(e == "data" for e, _ in sse_events(response.text)), kind
        for get in ("/generate/input_schema", "/docs", "/openapi.json", "/metrics"):
            assert client.get(get).status_code == 200, get
        assert client.get("/generate/playground/").status_code == 200


def test_the_ui_shell_is_open_but_its_api_calls_are_not(fake_upstream: Any) -> None:
    client = TestClient(create_app(auth_settings(fake_upstream)), raise_server_exceptions=False)
    page = client.get("/ui")
    assert page.status_code == 200
    assert "static/auth.js" in page.text
    assert client.get("/ui/static/auth.js").status_code == 200
    assert client.post("/generate/stream", json=BODY).status_code == 401
    assert client.get("/classify/input_schema").status_code == 401


def test_a_browser_page_load_gets_the_login_form_and_the_cookie_opens_the_playground(
    fake_upstream: Any,
) -> None:
    client = TestClient(create_app(auth_settings(fake_upstream)), raise_server_exceptions=False)
    page = client.get("/generate/playground/", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert '<form method="post" action="/login">' in page.text
    assert 'value="/generate/playground/"' in page.text
    wrong = client.post("/login", data={"api_key": "nope", "next": "/docs"})
    assert wrong.status_code == 401 and "nope" not in wrong.text
    assert "logprobs_session" not in client.cookies
    login = client.post(
        "/login", data={"api_key": KEY, "next": "/generate/playground/"}, follow_redirects=False
    )
    assert login.status_code == 303
    assert login.headers["location"] == "/generate/playground/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
    # the playground's own fetches carry only the cookie
    assert client.get("/generate/playground/").status_code == 200
    assert client.post("/generate/stream_log", json=BODY).status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    client.post("/logout")
    assert client.get("/docs").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "\\\\evil"])
def test_login_never_redirects_off_the_server(fake_upstream: Any, target: str) -> None:
    client = TestClient(create_app(auth_settings(fake_upstream)))
    login = client.post("/login", data={"api_key": KEY, "next": target}, follow_redirects=False)
    assert login.headers["location"] == "/docs"


def test_without_keys_everything_is_open(client: TestClient) -> None:
    assert client.post("/generate/invoke", json=BODY).status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/login").status_code == 404


def test_key_errors_and_logs_never_hold_the_key(
    fake_upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(auth_settings(fake_upstream)), raise_server_exceptions=False) as c:
        c.post("/generate/invoke", json=BODY, headers={"X-API-Key": KEY})
        c.post("/generate/invoke", json=BODY, headers={"X-API-Key": "sk-wrong-123456789"})
        c.post("/generate/invoke", json=invoke_body("status:500"), headers={"X-API-Key": KEY})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".access")]
    assert [line["status"] for line in lines] == [200, 401, 502]
    assert lines[0]["route"] == "/generate/invoke" and lines[0]["tokens"] == 5
    assert lines[0]["key_id"] and lines[0]["key_id"] == lines[2]["key_id"]
    assert lines[1]["key_id"] is None and lines[1]["rejected"] == "unauthorized"
    assert isinstance(lines[0]["duration_ms"], float)
    assert KEY not in caplog.text and "sk-wrong-123456789" not in caplog.text


# --- limits -------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_in_invoke_batch_and_stream(
    fake_upstream: Any,
) -> None:
    settings = auth_settings(fake_upstream, rate_limit=3)
    headers = {"X-API-Key": KEY}
    with TestClient(create_app(settings), headers=headers) as client:
        for _ in range(3):
            assert client.post("/generate/invoke", json=BODY).status_code == 200
        assert client.get("/generate/input_schema").status_code == 200  # GETs do not count
        batch = {"inputs": [{"prompt": "a"}], "config": BODY["config"]}
        for path, body in (("invoke", BODY), ("batch", batch), ("stream", BODY)):
            refused = client.post(f"/generate/{path}", json=body)
            assert refused.status_code == 429, path
            assert refused.headers["content-type"] == "application/json", path
            assert refused.json()["error"]["type"] == "too_many_requests", path
            assert 1 <= int(refused.headers["retry-after"]) <= 20, path
        # limits are per key: the other key still has its own
        other = client.post("/generate/invoke", json=BODY, headers={"X-API-Key": OTHER})
        assert other.status_code == 200
        metrics = client.get("/metrics").text
    assert 'logprobs_rejected_requests_total{reason="rate"} 3.0' in metrics


def test_concurrency_limit_holds_while_a_stream_runs(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, max_concurrent=1, request_timeout=30)
    slow = invoke_body("slow", max_tokens=500)
    with run_server(create_app(settings)) as url:
        opened = threading.Event()
        done = threading.Event()

        def hold_a_stream() -> None:
            with httpx.stream("POST", url + "/generate/stream", json=slow, timeout=30) as r:
                for line in r.iter_lines():
                    if line.startswith("event: data"):
                        opened.set()
                    if done.is_set():
                        break

        holder = threading.Thread(target=hold_a_stream)
        holder.start()
        try:
            assert opened.wait(10)
            batch = {"inputs": [{"prompt": "a"}], "config": BODY["config"]}
            for path, body in (("invoke", BODY), ("batch", batch), ("stream", BODY)):
                refused = httpx.post(f"{url}/generate/{path}", json=body, timeout=10)
                assert refused.status_code == 429, path
                assert refused.headers["retry-after"] == "1"
                assert "in flight" in refused.json()["error"]["message"]
        finally:
            done.set()
            holder.join(15)
        ok = httpx.post(url + "/generate/invoke", json=BODY, timeout=10)
        assert ok.status_code == 200


# --- body size ----------------------------------------------------------------------------


def test_body_over_the_cap_is_413_by_content_length(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, max_body_bytes=2000)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    big = invoke_body("ok", prompt="x" * 3000)
    refused = client.post("/generate/invoke", json=big)
    assert refused.status_code == 413
    assert refused.json()["error"]["type"] == "payload_too_large"
    assert client.post("/generate/invoke", json=BODY).status_code == 200


def test_body_over_the_cap_is_413_while_a_chunked_body_is_read(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, max_body_bytes=2000)
    with run_server(create_app(settings)) as url:

        def chunks() -> Iterator[bytes]:
            yield b'{"input": {"prompt": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}}'

        def small() -> Iterator[bytes]:
            yield json.dumps(BODY).encode()

        refused = httpx.post(url + "/generate/invoke", content=chunks(), timeout=10)
        assert "content-length" not in refused.request.headers
        assert refused.status_code == 413
        assert refused.json()["error"]["type"] == "payload_too_large"
        ok = httpx.post(url + "/generate/invoke", content=small(), timeout=10)
        assert ok.status_code == 200


def test_prompt_cap_still_applies_under_the_body_cap(fake_upstream: Any) -> None:
    settings = fake_upstream_settings(fake_upstream, max_prompt_chars=10)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    refused = client.post("/generate/invoke", json=invoke_body("ok", prompt="y" * 11))
    assert refused.status_code == 400


# --- CORS ---------------------------------------------------------------------------------


def test_cors_allows_only_the_listed_origins(fake_upstream: Any) -> None:
    settings = auth_settings(fake_upstream, cors_origins="https://app.example, https://b.example")
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type",
    }
    allowed = client.options(
        "/generate/invoke", headers={"Origin": "https://app.example", **preflight}
    )
    assert allowed.status_code == 200  # answered before the key check
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    denied = client.options(
        "/generate/invoke", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers
    call = client.post(
        "/generate/invoke", json=BODY, headers={"Origin": "https://b.example", "X-API-Key": KEY}
    )
    assert call.status_code == 200
    assert call.headers["access-control-allow-origin"] == "https://b.example"
    refused = client.post("/generate/invoke", json=BODY, headers={"Origin": "https://b.example"})
    assert refused.status_code == 401  # a browser can read the 401
    assert refused.headers["access-control-allow-origin"] == "https://b.example"


def test_no_cors_by_default(client: TestClient) -> None:
    call = client.post("/generate/invoke", json=BODY, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in call.headers


# --- metrics ------------------------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name{labels}`` in Prometheus text, 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            inner = head[len(name) :].strip("{}")
            if ",".join(sorted(inner.split(","))) == want:
                return float(value)
    return 0.0


def test_metrics_count_requests_tokens_rejections_and_upstream_errors(fake_upstream: Any) -> None:
    settings = auth_settings(fake_upstream, max_body_bytes=5000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        key = {"X-API-Key": KEY}
        client.post("/generate/invoke", json=BODY, headers=key)
        client.post("/generate/stream", json=BODY, headers=key)
        client.post("/generate/invoke", json=invoke_body("status:503"), headers=key)
        client.post("/generate/invoke", json=BODY)
        client.post("/generate/invoke", json=invoke_body("ok", prompt="z" * 6000), headers=key)
        text = client.get("/metrics", headers=key).text
    requests = "logprobs_requests_total"
    assert sample(text, requests, route="/generate/invoke", method="POST", status="200") == 1
    assert sample(text, requests, route="/generate/invoke", method="POST", status="401") == 1
    assert sample(text, requests, route="/generate/invoke", method="POST", status="413") == 1
    assert sample(text, requests, route="/generate/stream", method="POST", status="200") == 1
    assert sample(text, "logprobs_tokens_generated_total", route="/generate/invoke") == 5
    assert sample(text, "logprobs_tokens_generated_total", route="/generate/stream") == 5
    assert sample(text, "logprobs_upstream_errors_total", type="upstream_unavailable") == 1
    assert sample(text, "logprobs_rejected_requests_total", reason="unauthorized") == 1
    assert sample(text, "logprobs_rejected_requests_total", reason="payload_too_large") == 1
    first = "logprobs_time_to_first_event_seconds_count"
    assert sample(text, first, route="/generate/stream") == 1
    duration = "logprobs_request_duration_seconds_count"
    assert sample(text, duration, route="/generate/invoke", method="POST") == 4


def test_each_app_has_its_own_registry(fake_upstream: Any) -> None:
    first = TestClient(create_app(fake_upstream_settings(fake_upstream)))
    second = TestClient(create_app(fake_upstream_settings(fake_upstream)))
    first.post("/generate/invoke", json=BODY)
    count = 'logprobs_requests_total{method="POST",route="/generate/invoke",status="200"} 1.0'
    assert count in first.get("/metrics").text
    assert "/generate/invoke" not in second.get("/metrics").text
