"""Options of the real engines (`--engine-arg KEY=VALUE`, `--engine-config FILE.yaml`), validated once.

Server options pass through to vLLM's OpenAI-compatible server (same names as its flags, with
``_`` for ``-``); client options shape the load generator. One pydantic model, so a typo is one
`UserError` line naming the key and listing the known ones, before anything is launched.
The API key itself never appears here: only the *name* of the environment variable holding it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slobench.errors import UserError

# Engine-option keys that belong to the policy: `slobench.cluster.run.RunConfig` folds them into its
# `PolicySpec` (scheduler_options → options, spec_alpha → draft.alpha); the launcher never reads them here.
POLICY_KEYS = ("scheduler_options", "spec_alpha")


class EngineOptions(BaseModel):
    """Everything configurable about a real engine besides the model and the scheduler."""

    model_config = ConfigDict(extra="forbid")

    # --- vLLM server (``--engine vllm``) ---
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kv_cache_memory_bytes: int | None = Field(
        default=None, gt=0, description="KV cache size; default 1 GiB on vLLM's CPU build (its own sizing fails)")
    speculative_config: dict[str, Any] | None = Field(
        default=None, description='JSON, e.g. {"method": "ngram", "num_speculative_tokens": 4}')
    dtype: str | None = None
    max_model_len: int | None = Field(default=None, gt=0)
    enforce_eager: bool | None = Field(default=None, description="default: on for the CPU build (skips a 20 s compile)")
    seed: int | None = None
    extra_args: list[str] = Field(default_factory=list, description="more vLLM server flags, verbatim")
    port: int | None = Field(default=None, gt=0, lt=65536, description="fixed port; default: a free one")
    python: str | None = Field(default=None, description="interpreter with vllm installed; default: this one")
    startup_timeout_s: float = Field(default=600.0, gt=0)
    ray_address: str | None = Field(
        default=None, description="where --replicas N > 1 starts its N servers (Ray actors): local | auto | "
        "ray://HOST:PORT | HOST:PORT; default local (or the Ray this process already joined)")
    # --- the policy's (kept for the documented flags): RunConfig moves them into its PolicySpec, so the
    # policy's options are given once for every engine; both given differently is one error line ---
    scheduler_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the slobench policy (JSON); = the run's policy options")
    spec_alpha: float | None = Field(
        default=None, gt=0, lt=1, description="draft acceptance rate the policy assumes (default 0.7)")
    # --- client (both engines) ---
    api: Literal["completions", "chat"] = "completions"
    token_prompts: bool = Field(default=True, description="send prompts as token-id lists (exact lengths)")
    extensions: bool = Field(default=True, description="send vLLM fields: ignore_eos, min_tokens, vllm_xargs")
    served_model: str | None = Field(default=None, description="model name in requests; default: server's first")
    vocab_size: int | None = Field(default=None, gt=8, description="token-id range for synthetic prompts")
    api_key_env: str | None = Field(default=None, description="NAME of the env var holding the API key")
    request_timeout_s: float = Field(default=600.0, gt=0)
    max_connections: int = Field(default=2048, gt=0)

    @field_validator("speculative_config", "scheduler_options", mode="before")
    @classmethod
    def _json(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg})") from None
        return v

    @field_validator("extra_args", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return shlex.split(v) if isinstance(v, str) else v

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, v: str | None) -> str | None:
        from slobench.engines.ray_session import ADDRESS_FORMS, check_address

        if v is None:
            return v
        try:
            return check_address(v)
        except UserError:
            raise ValueError(f"not a Ray address; use {ADDRESS_FORMS}") from None

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not all(c.isalnum() or c == "_" for c in v)):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), not the key")
        return v

    def server_fields(self) -> dict[str, Any]:
        """The options that change the launched server (they key the engine pool)."""
        client = {"api", "token_prompts", "extensions", "served_model", "vocab_size", "api_key_env",
                  "request_timeout_s", "max_connections", "startup_timeout_s", "ray_address"}
        return {k: v for k, v in self.model_dump().items() if k not in client and k not in POLICY_KEYS}


def parse_engine_args(pairs: list[str] | None, config_file: Path | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` flags (over) a YAML file → a plain dict, validated by `validate_engine_options`.

    Values are parsed as YAML scalars (``8192`` → int, ``true`` → bool, JSON objects stay text for
    the JSON fields), so the CLI and a YAML file give the same types.
    """
    import yaml

    out: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = yaml.safe_load(Path(config_file).read_text()) or {}
        except FileNotFoundError:
            raise UserError(f"--engine-config {config_file}: file not found") from None
        except yaml.YAMLError as exc:
            raise UserError(f"--engine-config {config_file}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise UserError(f"--engine-config {config_file}: expected a mapping of option: value")
        out.update(raw)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--engine-arg {pair!r}: expected KEY=VALUE, e.g. --engine-arg max_num_seqs=64")
        key = key.strip().replace("-", "_")
        text = value.strip()
        if text.startswith(("{", "[")) and key in ("speculative_config", "scheduler_options"):
            out[key] = text
            continue
        try:
            out[key] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            out[key] = text
    validate_engine_options(out)
    return out


def validate_engine_options(raw: dict[str, Any]) -> EngineOptions:
    """Validate engine options; the first problem becomes one `UserError` line naming the key."""
    try:
        return EngineOptions.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "engine options"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(EngineOptions.model_fields))
            raise UserError(f"--engine-arg {key}: unknown engine option; known: {known}") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"--engine-arg {key}: {msg} (got {err.get('input')!r})") from None
