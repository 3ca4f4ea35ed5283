"""LangServe encodes every ``/invoke`` output twice; our routes answer ``/invoke`` themselves.

Upstream behaviour (langserve 0.3, ``APIHandler.invoke``): the runnable's output is dumped
to JSON values (``serializer.dumpd``), validated again against the route's declared output
type (``InvokeResponse(output=...)``: every ``/generate`` token through ``TokenLogprob``
again), then ``jsonable_encoder`` walks every value in Python before ``JSONResponse``
renders it. By py-spy on the zero upstream that was 45% of a ``/generate`` request (37%
encoding, 8% validation), and it made ``/generate`` 0.65x stock LangServe's ``/chat``.

Correction: ``add_invoke_route`` puts an ``/invoke`` (and ``/c/{config_hash}/invoke``) in
front of LangServe's for one route. The request is read by LangServe's own ``APIHandler``
(the same config and input checks, run id and metadata), and the whole body is encoded in
one pass by LangServe's own serializer (orjson, the same ``default`` for LangChain objects),
where LangServe encoded the output with it, decoded it, validated it, walked it and encoded
it again with ``json``. The body is the same JSON value (``tests/api/test_invoke_encoding.py``;
only the spelling of some floats differs, ``1e-05`` against ``1e-5``). The documented routes
(OpenAPI) stay LangServe's.
Our outputs need no second validation: every chain returns its declared pydantic model.
It calls one private method, ``APIHandler._get_config_and_input`` (LangServe's own request
reading), pinned by the canary ``test_langserve_reads_a_request_in_one_method``.

Delete when: LangServe's invoke stops validating the output again (the canary
``test_langserve_validates_invoke_output_again`` fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from langchain_core.runnables import Runnable
from langserve import APIHandler
from langserve.serialization import WellKnownLCSerializer

_SERIALIZER = WellKnownLCSerializer()


def invoke_body(output: Any, run_id: Any) -> bytes:
    """What LangServe's ``/invoke`` answers for ``output``, encoded in one pass."""
    body = {"output": output, "metadata": {"run_id": str(run_id), "feedback_tokens": []}}
    return _SERIALIZER.dumps(body)


def add_invoke_route(
    app: FastAPI, runnable: Runnable[Any, Any], path: str, config_keys: Sequence[str]
) -> None:
    """Serve ``{path}/invoke`` and ``{path}/c/{config_hash}/invoke`` for ``runnable``.

    Call before LangServe's ``add_routes`` for the same path: the first route that matches
    answers, and LangServe's own stay for the documentation.
    """
    handler = APIHandler(runnable, path=path, config_keys=config_keys)

    async def invoke_with_config(request: Request, config_hash: str) -> Response:
        config, value = await handler._get_config_and_input(request, config_hash, endpoint="invoke")
        output = await runnable.ainvoke(value, config=config)
        return Response(invoke_body(output, config["run_id"]), media_type="application/json")

    async def invoke(request: Request) -> Response:
        return await invoke_with_config(request, "")

    app.add_api_route(f"{path}/invoke", invoke, methods=["POST"], include_in_schema=False)
    app.add_api_route(
        path + "/c/{config_hash}/invoke",
        invoke_with_config,
        methods=["POST"],
        include_in_schema=False,
    )
