"""Canaries: each upstream behaviour that a module of ``langserve_logprobs.workarounds``
corrects, shown on the stock library. A failure here means a new version changed that
behaviour: read the named module's docstring and delete the workaround if it is no longer
needed (or adapt it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from langchain_core.runnables import RunnableLambda
from langserve import add_routes
from pydantic import BaseModel


class _Small(BaseModel):
    kept: int


def _stock(runnable: Any, **kwargs: Any) -> TestClient:
    app = FastAPI()
    add_routes(app, runnable, path="/r", **kwargs)
    return TestClient(app, raise_server_exceptions=False)


def test_langserve_validates_invoke_output_again() -> None:
    """workarounds.invoke_encoding: LangServe's /invoke validates the output against the
    declared type a second time (an unknown key is dropped on the way)."""
    lam: Any = RunnableLambda(lambda _: {"kept": 1, "dropped": 2})
    runnable = lam.with_types(input_type=str, output_type=_Small)
    reply = _stock(runnable).post("/r/invoke", json={"input": "x"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == {"kept": 1}
