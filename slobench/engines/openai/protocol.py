"""One streamed generation over the OpenAI-compatible HTTP API, timestamped token by token.

*How to send* (the load generator in `client.py` decides *when*). Builds the request body for
``/v1/completions`` or ``/v1/chat/completions``, reads the server-sent events and stamps every
token with the arrival time of the chunk that carried it. A chunk may carry several tokens
(speculative decoding, stream batching): they share that timestamp and are counted exactly from
``token_ids`` (vLLM's ``return_token_ids``), else from continuous usage, else one per non-empty
delta; the final usage chunk reconciles the count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx


@dataclass
class Endpoint:
    """Where and how to send. ``api_key`` is excluded from repr so it never lands in a log."""

    base_url: str  # ends with /v1
    model: str
    api: Literal["completions", "chat"] = "completions"
    token_prompts: bool = True
    extensions: bool = True  # vLLM's ignore_eos / min_tokens / return_token_ids / vllm_xargs
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 600.0

    @property
    def path(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"

    def headers(self, request_id: str) -> dict[str, str]:
        h = {"Content-Type": "application/json", "X-Request-Id": request_id}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h


class HTTPFailure(Exception):
    """The server answered with an HTTP error status (message = its error text, one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass
class Generation:
    """What came back from one streamed call."""

    token_times: list[float] = field(default_factory=list)
    token_ids: list[int] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens (vLLM: --enable-prompt-tokens-details)
    usage_seen: bool = False  # the server sent a usage block at all
    finish_reason: str | None = None
    chunks: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.token_times)


def build_body(ep: Endpoint, prompt: list[int] | str, max_tokens: int, xargs: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON body. ``ignore_eos`` + ``min_tokens`` make the output exactly ``max_tokens`` long."""
    body: dict[str, Any] = {
        "model": ep.model, "max_tokens": max_tokens, "stream": True, "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    if ep.api == "chat":
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = prompt
    if ep.extensions:
        body["ignore_eos"] = True
        body["min_tokens"] = max_tokens
        body["stream_options"]["continuous_usage_stats"] = True
        if ep.api == "completions":
            body["return_token_ids"] = True
        if xargs:
            body["vllm_xargs"] = xargs
    return body


def _error_text(raw: bytes) -> str:
    """The server's error message as one line (JSON ``error.message`` or ``message``, else the text)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                text = str(err.get("message") or err.get("detail") or err)
            else:
                text = str(err)
    except json.JSONDecodeError:
        pass
    line = " ".join(text.split())
    return line[:300] + ("…" if len(line) > 300 else "")


def _chunk_tokens(obj: dict[str, Any], api: str, gen: Generation) -> tuple[int, list[int] | None]:
    """Tokens carried by one SSE chunk (count, ids when the server sent them)."""
    choices = obj.get("choices") or []
    usage = obj.get("usage")
    n = 0
    ids: list[int] | None = None
    for c in choices:
        if c.get("finish_reason"):
            gen.finish_reason = c["finish_reason"]
        tid = c.get("token_ids")
        if tid is not None:
            ids = (ids or []) + list(tid)
            n += len(tid)
            continue
        if usage and usage.get("completion_tokens") is not None:
            n += max(int(usage["completion_tokens"]) - gen.num_tokens - n, 0)
            continue
        if api == "chat":
            delta = c.get("delta") or {}
            piece = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
        else:
            piece = c.get("text")
        if piece:
            n += 1
    return n, ids


async def stream_generation(
    client: httpx.AsyncClient,
    ep: Endpoint,
    prompt: list[int] | str,
    max_tokens: int,
    *,
    request_id: str,
    clock: Callable[[], float],
    xargs: dict[str, Any] | None = None,
    on_tokens: Callable[[float, int], None] | None = None,
) -> Generation:
    """POST one streamed request; return every token's arrival time (on ``clock``).

    Raises `HTTPFailure` on an HTTP error status and lets httpx transport errors through (the
    caller decides whether the server is gone). ``on_tokens(t, n)`` is called per chunk so the
    caller can split multi-stage generations while they stream.
    """
    gen = Generation()
    body = build_body(ep, prompt, max_tokens, xargs)
    url = ep.base_url.rstrip("/") + ep.path
    async with client.stream("POST", url, json=body, headers=ep.headers(request_id), timeout=ep.timeout_s) as resp:
        if resp.status_code >= 400:
            raise HTTPFailure(resp.status_code, _error_text(await resp.aread()))
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            t = clock()
            obj = json.loads(data)
            if "error" in obj and not obj.get("choices"):
                err = obj["error"]
                msg = err.get("message", err) if isinstance(err, dict) else err
                raise HTTPFailure(int(err.get("code", 500)) if isinstance(err, dict) and str(
                    err.get("code", "")).isdigit() else 500, " ".join(str(msg).split()))
            gen.chunks += 1
            usage = obj.get("usage")
            if usage:
                gen.usage_seen = True
                gen.prompt_tokens = usage.get("prompt_tokens", gen.prompt_tokens)
                details = usage.get("prompt_tokens_details")
                if isinstance(details, dict) and details.get("cached_tokens") is not None:
                    gen.cached_tokens = int(details["cached_tokens"])
            n, ids = _chunk_tokens(obj, ep.api, gen)
            if ids is not None:
                gen.token_ids = (gen.token_ids or []) + ids
            if n:
                gen.token_times.extend([t] * n)
                if on_tokens is not None:
                    on_tokens(t, n)
            if usage and not obj.get("choices"):  # the final usage-only chunk
                gen.completion_tokens = usage.get("completion_tokens")
    if gen.completion_tokens is not None and gen.completion_tokens > gen.num_tokens and gen.token_times:
        # Tokens the stream did not show one by one (e.g. empty deltas): they arrived by the last chunk.
        extra = gen.completion_tokens - gen.num_tokens
        t_last = gen.token_times[-1]
        gen.token_times.extend([t_last] * extra)
        if on_tokens is not None:
            on_tokens(t_last, extra)
    return gen
