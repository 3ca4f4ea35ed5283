"""Settings: every knob of the service, read once from the environment.

With neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` set, the embedded model
(Gemma 3 270M via llama-cpp-python) serves at ``/local/v1`` and the chains call it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_MODEL_NAME = "gemma-3-270m-q4_k_m"
LOCAL_PREFIX = "/local/v1"


class Settings(BaseSettings):
    """Service configuration, from environment variables (see .env.example)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    openai_api_key: SecretStr | None = Field(
        default=None, description="API key of the upstream; unset means the embedded model."
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama).",
    )
    model_name: str = Field(
        default=LOCAL_MODEL_NAME,
        validation_alias="LOGPROBS_MODEL",
        description="Model name sent upstream.",
    )
    top_logprobs: int = Field(
        default=5,
        ge=0,
        le=20,
        validation_alias="LOGPROBS_TOP_LOGPROBS",
        description="Default number of alternatives per token.",
    )
    temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        validation_alias="LOGPROBS_TEMPERATURE",
        description="Default sampling temperature (0: greedy, reproducible).",
    )
    max_tokens: int = Field(
        default=256,
        ge=1,
        validation_alias="LOGPROBS_MAX_TOKENS",
        description="Default max_tokens of a generation.",
    )
    max_tokens_cap: int = Field(
        default=2048,
        ge=1,
        validation_alias="LOGPROBS_MAX_TOKENS_CAP",
        description="Largest max_tokens a request may ask for.",
    )
    max_prompt_chars: int = Field(
        default=32_000,
        ge=1,
        validation_alias="LOGPROBS_MAX_PROMPT_CHARS",
        description="Largest prompt (all text fields of one input together), in characters.",
    )
    request_timeout: float = Field(
        default=120.0,
        gt=0,
        validation_alias="LOGPROBS_REQUEST_TIMEOUT",
        description="Seconds before an upstream request times out.",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        validation_alias="LOGPROBS_MAX_RETRIES",
        description="Retries of transient upstream errors (429, 503, connection reset).",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server listens on.")
    local_model_path: str | None = Field(
        default=None,
        validation_alias="LOCAL_MODEL_PATH",
        description="GGUF file of the embedded model; default: the gemma3-270m package.",
    )
    local_n_ctx: int = Field(
        default=4096,
        ge=256,
        validation_alias="LOCAL_N_CTX",
        description="Context window of the embedded model, in tokens.",
    )
    local_n_threads: int | None = Field(
        default=None,
        ge=1,
        validation_alias="LOCAL_N_THREADS",
        description="CPU threads of the embedded model (default: half the cores, at least 1).",
    )

    _listen_address: tuple[str, int] | None = PrivateAttr(default=None)

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where the server was seen listening (``learn_listen_address``), if it was."""
        return self._listen_address

    def learn_listen_address(self, host: str, port: int | None) -> None:
        """Record the address a request reached the server on (ASGI ``scope["server"]``).

        The chains call the embedded model over HTTP at ``HOST:PORT``; when uvicorn was
        started with another ``--port`` (or ``--host``), they follow this address instead.
        Only IP addresses count (an in-process test client reports ``testserver``); a
        wildcard address becomes loopback.
        """
        if not port:
            return
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        self._listen_address = (str(ip), port)

    @property
    def use_local(self) -> bool:
        """True when no upstream is configured and the embedded model serves."""
        return self.openai_api_key is None and self.openai_base_url is None

    @property
    def upstream_base_url(self) -> str:
        """Where the chains send chat completions."""
        if self.openai_base_url:
            return self.openai_base_url
        if self.use_local:
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
            return f"http://{host}:{self.port}{LOCAL_PREFIX}"
        return "https://api.openai.com/v1"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
