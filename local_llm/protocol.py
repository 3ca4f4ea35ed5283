"""Wire schemas of the OpenAI-compatible API, in OpenAI's exact shapes.

Requests are validated strictly from JSON (``"5"`` is not an integer, ``"yes"`` not a boolean),
like OpenAI does; unknown fields that OpenAI SDKs send are accepted and ignored.
``ignore_eos`` is an extension (as in vLLM) used by benchmarks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from local_llm.errors import BadRequestError

MAX_TOP_LOGPROBS = 20
MAX_STOP_SEQUENCES = 4


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class TextContentPart(_Request):
    """One text part of a message's content."""

    type: Literal["text"] = Field(description="Content part type; only text is supported.")
    text: str = Field(description="The text of this part.")


class ChatMessage(_Request):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="Author of the message; developer is treated as system."
    )
    content: str | list[TextContentPart] | None = Field(
        default=None, description="Message text, or a list of text parts."
    )
    name: str | None = Field(default=None, description="Optional author name (ignored).")

    def text(self) -> str:
        """Return the content as one string (text parts joined without separator)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Request):
    """Options of a streamed response."""

    include_usage: bool | None = Field(
        default=None, description="Send a last chunk with usage and no choices."
    )


class ResponseFormatText(_Request):
    """Free text output."""

    type: Literal["text"] = Field(description="Response format type.")


class ResponseFormatJsonObject(_Request):
    """Any valid JSON object."""

    type: Literal["json_object"] = Field(description="Response format type.")


class JsonSchemaSpec(_Request):
    """A named JSON schema the output must follow."""

    name: str = Field(min_length=1, max_length=64, description="Name of the schema.")
    description: str | None = Field(default=None, description="What the schema is for.")
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="The JSON schema (an object)."
    )
    strict: bool | None = Field(default=None, description="Accepted; output always follows it.")


class ResponseFormatJsonSchema(_Request):
    """JSON output constrained by a schema."""

    type: Literal["json_schema"] = Field(description="Response format type.")
    json_schema: JsonSchemaSpec = Field(description="The schema and its name.")


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
    Field(discriminator="type"),
]


class ChatCompletionRequest(_Request):
    """Body of POST /v1/chat/completions."""

    model: str | None = Field(default=None, description="Model name; any name is accepted.")
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens to generate.")
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="Same as max_tokens (newer name); wins when both given."
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, allow_inf_nan=False, description="Sampling temperature (1)."
    )
    top_p: float | None = Field(
        default=None, gt=0, le=1, allow_inf_nan=False, description="Nucleus sampling mass (1)."
    )
    seed: int | None = Field(default=None, description="Seed for reproducible sampling.")
    stop: str | list[str] | None = Field(
        default=None, description="Up to 4 strings that end the generation when produced."
    )
    logprobs: bool | None = Field(default=None, description="Return per-token logprobs.")
    top_logprobs: int | None = Field(
        default=None, ge=0, le=MAX_TOP_LOGPROBS, description="Alternatives per token (0-20)."
    )
    stream: bool | None = Field(default=None, description="Stream chunks as server-sent events.")
    stream_options: StreamOptions | None = Field(default=None, description="Streaming options.")
    n: int | None = Field(default=None, description="Number of choices; only 1 is supported.")
    response_format: ResponseFormat | None = Field(
        default=None, description="text, json_object or json_schema."
    )
    ignore_eos: bool = Field(
        default=False, description="Extension: keep generating past end-of-turn (benchmarks)."
    )

    def check(self) -> None:
        """Cross-field checks that a field constraint cannot express.

        Raises:
            BadRequestError: naming the offending field.
        """
        if self.n is not None and self.n != 1:
            msg = f"Invalid 'n': only n=1 is supported, got {self.n}."
            raise BadRequestError(msg, param="n")
        if self.top_logprobs is not None and not self.logprobs:
            msg = "Invalid 'top_logprobs': 'logprobs' must be set to true to use top_logprobs."
            raise BadRequestError(msg, param="top_logprobs")
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP_SEQUENCES:
            msg = f"Invalid 'stop': at most {MAX_STOP_SEQUENCES} sequences, got {len(self.stop)}."
            raise BadRequestError(msg, param="stop")
        if isinstance(self.response_format, ResponseFormatJsonSchema):
            if self.response_format.json_schema.schema_ is None:
                msg = "Invalid 'response_format.json_schema.schema': a schema is required."
                raise BadRequestError(msg, param="response_format.json_schema.schema")

    def stop_list(self) -> list[str]:
        """Return the stop strings as a list without empty strings."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


# --- responses ---------------------------------------------------------------------------------


class ChatCompletionTopLogprob(BaseModel):
    """One alternative token at a position."""

    token: str = Field(description="Token text, or 'bytes:\\x..' when not valid UTF-8 alone.")
    logprob: float = Field(description="Natural-log probability; -9999.0 stands for zero.")
    bytes: list[int] | None = Field(description="UTF-8 bytes of the token.")


class ChatCompletionTokenLogprob(BaseModel):
    """The chosen token at a position, with its alternatives."""

    token: str = Field(description="Token text, or 'bytes:\\x..' when not valid UTF-8 alone.")
    logprob: float = Field(description="Natural-log probability; -9999.0 stands for zero.")
    bytes: list[int] | None = Field(description="UTF-8 bytes of the token.")
    top_logprobs: list[ChatCompletionTopLogprob] = Field(
        description="Most likely tokens, best first."
    )


class ChoiceLogprobs(BaseModel):
    """Logprobs of a choice."""

    content: list[ChatCompletionTokenLogprob] | None = Field(description="One entry per token.")
    refusal: list[ChatCompletionTokenLogprob] | None = Field(
        default=None, description="Always null."
    )


class AssistantMessage(BaseModel):
    """The generated message."""

    role: Literal["assistant"] = Field(default="assistant", description="Always assistant.")
    content: str | None = Field(description="Generated text.")
    refusal: str | None = Field(default=None, description="Always null.")


class Choice(BaseModel):
    """One completion choice."""

    index: int = Field(default=0, description="Always 0.")
    message: AssistantMessage = Field(description="The generated message.")
    logprobs: ChoiceLogprobs | None = Field(description="Per-token logprobs when requested.")
    finish_reason: str | None = Field(description="stop or length.")


class Usage(BaseModel):
    """Token counts."""

    prompt_tokens: int = Field(description="Tokens in the formatted prompt.")
    completion_tokens: int = Field(description="Tokens generated.")
    total_tokens: int = Field(description="Sum of both.")


class ChatCompletionResponse(BaseModel):
    """Non-streamed response of POST /v1/chat/completions."""

    id: str = Field(description="chatcmpl-... identifier.")
    object: Literal["chat.completion"] = Field(default="chat.completion", description="Type.")
    created: int = Field(description="Unix time in seconds.")
    model: str = Field(description="The requested model name, echoed.")
    choices: list[Choice] = Field(description="Exactly one choice.")
    usage: Usage = Field(description="Token counts.")
    system_fingerprint: str | None = Field(default=None, description="Server build tag.")


class DeltaMessage(BaseModel):
    """Incremental message content in a chunk; unset fields are left out (``{}`` at the end)."""

    role: Literal["assistant"] | None = Field(default=None, description="Only in 1st chunk.")
    content: str | None = Field(default=None, description="New text; may be empty.")

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class ChunkChoice(BaseModel):
    """One choice in a streamed chunk."""

    index: int = Field(default=0, description="Always 0.")
    delta: DeltaMessage = Field(description="What this chunk adds.")
    logprobs: ChoiceLogprobs | None = Field(default=None, description="Logprobs of this chunk.")
    finish_reason: str | None = Field(default=None, description="Set in the last choice chunk.")


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed response."""

    id: str = Field(description="Same id in every chunk.")
    object: Literal["chat.completion.chunk"] = Field(
        default="chat.completion.chunk", description="Type."
    )
    created: int = Field(description="Unix time in seconds.")
    model: str = Field(description="The requested model name, echoed.")
    choices: list[ChunkChoice] = Field(description="One choice; empty in the usage chunk.")
    usage: Usage | None = Field(default=None, description="Only in the final usage chunk.")
    system_fingerprint: str | None = Field(default=None, description="Server build tag.")


class ModelCard(BaseModel):
    """One served model."""

    id: str = Field(description="Model name.")
    object: Literal["model"] = Field(default="model", description="Type.")
    created: int = Field(description="Unix time the model was loaded.")
    owned_by: str = Field(default="local", description="Owner.")


class ModelList(BaseModel):
    """Response of GET /v1/models."""

    object: Literal["list"] = Field(default="list", description="Type.")
    data: list[ModelCard] = Field(description="The served models.")


class ErrorDetail(BaseModel):
    """OpenAI error object."""

    message: str = Field(description="What went wrong, naming the field when relevant.")
    type: str = Field(description="invalid_request_error or server_error.")
    param: str | None = Field(default=None, description="The offending field, if any.")
    code: str | None = Field(default=None, description="Machine-readable code, if any.")


class ErrorResponse(BaseModel):
    """Body of every error response."""

    error: ErrorDetail = Field(description="The error.")


class GenerationRecord(BaseModel):
    """One finished generation."""

    id: str = Field(description="The chatcmpl id of the request.")
    prompt_tokens: int = Field(description="Tokens in the prompt.")
    completion_tokens: int = Field(description="Tokens generated.")
    finish_reason: Literal["stop", "length", "cancelled", "error"] = Field(
        description="Why the generation ended."
    )


class GenerationList(BaseModel):
    """Response of GET /v1/generations: the last finished generations, newest last."""

    data: list[GenerationRecord] = Field(description="Up to 100 records, newest last.")
    counters: dict[str, int] = Field(description="Totals since start.")
