"""Errors of the local model server, each mapped to one HTTP status and OpenAI error type.

Tree::

    LocalLLMError                  500 server_error
    ├── BadRequestError            400 invalid_request_error
    │   └── ContextLengthError     400 invalid_request_error, code context_length_exceeded
    ├── ModelNotReadyError         503 server_error
    │   └── EngineStartupError     503 server_error (the startup self-test failed)
    ├── ServerBusyError            503 server_error, code server_busy, Retry-After header
    └── EngineError                500 server_error

Messages are safe to send to clients: they never carry a stack trace or a path.
"""

from __future__ import annotations


class LocalLLMError(Exception):
    """Base class; ``status_code``, ``error_type``, ``param`` and ``code`` feed the error body."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequestError(LocalLLMError):
    """The request is malformed or asks for something this server cannot do.

    Named like the ``openai.BadRequestError`` clients get for it (the service's own
    ``InvalidRequestError`` is a different class, in the service's error tree).
    """

    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthError(BadRequestError):
    """The prompt does not fit in the model's context window."""

    def __init__(self, message: str, *, param: str | None = "messages"):
        super().__init__(message, param=param, code="context_length_exceeded")


class ModelNotReadyError(LocalLLMError):
    """The model is not loaded (yet, or any more)."""

    status_code = 503


class EngineError(LocalLLMError):
    """Inference failed inside llama.cpp."""


class EngineStartupError(ModelNotReadyError):
    """llama.cpp failed its startup self-test: this build cannot serve on this machine."""


class ServerBusyError(LocalLLMError):
    """Every slot is busy and the wait queue is full: retry after ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, code="server_busy")
        self.retry_after = retry_after
