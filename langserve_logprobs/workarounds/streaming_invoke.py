"""A chat model set to stream makes every ``ainvoke`` a token-by-token stream of objects.

Upstream behaviour (langchain-core 1.x ``BaseChatModel._should_stream``): with
``streaming=True`` (which our model must keep: ``configurable_fields`` rebuilds it with every
field explicit, and an explicit ``streaming=False`` turns streaming off for good) ``ainvoke``
goes through ``_astream`` whether or not anyone listens: a message chunk object, an
addition and a callback for every token.

Correction: ``listens_to_tokens`` tells whether a call has a token listener
(``astream_events``, a streaming callback handler: langchain-core marks them with its
private ``_StreamingCallbackHandler``); without one the model's ``_should_stream`` answers
False and ``ainvoke`` reads the upstream in one pass (``UpstreamChatOpenAI._agenerate``).

Delete when: langchain-core streams ``ainvoke`` only for listeners (the canary
``test_a_streaming_model_streams_every_ainvoke`` fails).
"""

from __future__ import annotations

from typing import Any

from langchain_core.tracers._streaming import _StreamingCallbackHandler


def listens_to_tokens(run_manager: Any) -> bool:
    """Whether a handler of ``run_manager`` (a callback manager, or None) wants each token."""
    handlers = getattr(run_manager, "handlers", None) or []
    return any(isinstance(h, _StreamingCallbackHandler) for h in handlers)
