"""Settings: every knob of the service, read once from the environment.

With neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` set, the embedded model
(Gemma 3 270M via llama-cpp-python) serves the chains on a private loopback port, and
users at ``/local/v1``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from langserve_logprobs.capabilities import UpstreamKind
from langserve_logprobs.limits import (
    LOW_PROB_THRESHOLD_MAX,
    MODEL_NAME,
    N_CTX_DEFAULT,
    TEMPERATURE_MAX,
    TOP_LOGPROBS_MAX,
)

LOCAL_PREFIX = "/local/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"


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
    upstream_kind: UpstreamKind = Field(
        default="auto",
        validation_alias="LOGPROBS_UPSTREAM_KIND",
        description="What the upstream is (langserve_logprobs.capabilities): auto (ask it), "
        "embedded, openai, vllm, llama-cpp-python, llama-server, ollama or generic.",
    )
    upstream_concurrency: int | None = Field(
        default=None,
        ge=1,
        validation_alias="LOGPROBS_UPSTREAM_CONCURRENCY",
        description="Most requests sent to the upstream at once (the others wait their turn); "
        "unset: what its kind takes (1 for llama-cpp-python's server, no limit otherwise).",
    )
    model_name: str = Field(
        default=MODEL_NAME,
        validation_alias="LOGPROBS_MODEL",
        description="Model name sent upstream.",
    )
    top_logprobs: int = Field(
        default=5,
        ge=0,
        le=TOP_LOGPROBS_MAX,
        validation_alias="LOGPROBS_TOP_LOGPROBS",
        description="Default number of alternatives per token (every route, /score too).",
    )
    temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=TEMPERATURE_MAX,
        validation_alias="LOGPROBS_TEMPERATURE",
        description="Default sampling temperature (0: greedy, reproducible).",
    )
    max_tokens: int = Field(
        default=256,
        ge=1,
        validation_alias="LOGPROBS_MAX_TOKENS",
        description="Default max_tokens of a generation.",
    )
    low_prob_threshold: float = Field(
        default=0.3,
        ge=0.0,
        le=LOW_PROB_THRESHOLD_MAX,
        validation_alias="LOGPROBS_LOW_PROB_THRESHOLD",
        description="Default low_prob_threshold of /generate: words whose weakest token is "
        "less likely are flagged.",
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
    decision_max_work: int = Field(
        default=20_000,
        ge=1,
        validation_alias="LOGPROBS_DECISION_MAX_WORK",
        description="Largest work of one decision, in estimated token positions (each "
        "question's prompt and every value's answer, a token per 3 bytes; twice with "
        "calibration), checked before any model work (400 beyond it).",
    )
    decision_calibration: Literal["contextual", "none"] = Field(
        default="contextual",
        validation_alias="LOGPROBS_DECISION_CALIBRATION",
        description="Default calibration of decisions: contextual (divide out the "
        "content-free input's distribution, Zhao et al. 2021) or none.",
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
        default=N_CTX_DEFAULT,
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
    local_parallel: int = Field(
        default=8,
        ge=1,
        le=64,
        validation_alias="LOCAL_PARALLEL",
        description="Requests the embedded model decodes together (continuous batching slots).",
    )
    local_max_queue: int = Field(
        default=32,
        ge=0,
        validation_alias="LOCAL_MAX_QUEUE",
        description="Requests that may wait for a slot; more get 503 with Retry-After.",
    )
    local_deterministic: bool = Field(
        default=False,
        validation_alias="LOCAL_DETERMINISTIC",
        description="Decode each request on its own: logprobs never depend on load, no speed-up.",
    )

    api_keys: SecretStr | None = Field(
        default=None,
        validation_alias="LOGPROBS_API_KEYS",
        description=(
            "Keys clients must send (comma-separated, or the path of a file with one key a "
            "line); unset: every route is open."
        ),
    )
    cors_origins: str | None = Field(
        default=None,
        validation_alias="LOGPROBS_CORS_ORIGINS",
        description="Comma-separated origins a browser app may call the API from; unset: none.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        validation_alias="LOGPROBS_MAX_BODY_BYTES",
        description="Largest request body, in bytes (413 beyond it).",
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        validation_alias="LOGPROBS_MAX_CONCURRENT",
        description="Requests one key (or client address) may have in flight; unset: no limit.",
    )
    rate_limit: int | None = Field(
        default=None,
        ge=1,
        validation_alias="LOGPROBS_RATE_LIMIT",
        description="Requests per minute one key (or client address) may make; unset: no limit.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        validation_alias="LOGPROBS_METRICS_PORT",
        description="Serve /metrics, unprotected, on this port of HOST instead of the main app.",
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias="LOGPROBS_DATABASE_URL",
        description="SQLAlchemy URL of the calibration database, e.g. "
        "postgresql://user:pass@host/db; unset: SQLite in LOGPROBS_DATA_DIR.",
    )
    data_dir: str = Field(
        default="data",
        validation_alias="LOGPROBS_DATA_DIR",
        description="Directory of the default SQLite calibration database (made on first use).",
    )

    @property
    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` split on commas, blanks dropped."""
        return [o.strip() for o in (self.cors_origins or "").split(",") if o.strip()]

    @property
    def use_local(self) -> bool:
        """True when no upstream is configured and the embedded model serves."""
        return self.openai_api_key is None and self.openai_base_url is None

    @property
    def upstream_base_url(self) -> str:
        """Where the chains send chat completions: ``OPENAI_BASE_URL``, else OpenAI.

        With the embedded model, ``create_app`` gives the chains settings whose
        ``openai_base_url`` is the model's own address (``langserve_logprobs.backend``).
        """
        return self.openai_base_url or OPENAI_BASE_URL


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
