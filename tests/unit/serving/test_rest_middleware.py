"""Without the access log, KServe's timing middleware is off the REST app once the server starts."""

from __future__ import annotations

from fastapi import FastAPI
from timing_asgi import TimingMiddleware

from serving.server import JsonBody, _RestServer


def _middlewares(timing: bool) -> list[type]:
    """The app's middlewares after KServe's start-up step that adds its own (``_add_middlewares``)."""
    app = FastAPI()
    app.add_middleware(JsonBody)  # added before the start, as run_model_server does
    server = _RestServer.__new__(_RestServer)  # only the start-up step, no dataplane
    server.timing = timing
    server.access_log_format = None
    server._add_middlewares(app)
    return [m.cls for m in app.user_middleware]


def test_the_timing_middleware_is_taken_off_without_the_access_log() -> None:
    assert _middlewares(timing=False) == [JsonBody]


def test_the_access_log_keeps_it() -> None:
    assert TimingMiddleware in _middlewares(timing=True)
