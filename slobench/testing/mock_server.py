"""A minimal OpenAI-compatible streaming server with a fixed token pace, for tests and client benchmarks.

Why: the load generator must be shown not to be the bottleneck, and the ``--engine openai`` path
(auth, errors, a server dying mid-run) must be testable without vLLM. This server answers
``/v1/models``, ``/health`` and streamed ``/v1/completions`` / ``/v1/chat/completions`` with exactly
``max_tokens`` tokens: the first after ``ttft_s``, then one every ``tpot_s`` (vLLM's chunk format:
``token_ids`` when asked, continuous usage, a final usage chunk, ``[DONE]``). Raw asyncio, one
connection per request, no dependencies. Run it in a thread (`MockServer`) or as
``python -m slobench.testing.mock_server --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from typing import Any


class MockServer:
    """Background-thread server; ``url`` is its API base (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, *, port: int = 0, ttft_s: float = 0.005, tpot_s: float = 0.002, api_key: str | None = None,
                 model: str = "mock", die_after_requests: int | None = None, usage: bool = True,
                 cached_tokens: int | None = None) -> None:
        self.port = port
        self.usage = usage  # False: no usage in any chunk (a server without stream usage)
        self.cached_tokens = cached_tokens  # reported as usage.prompt_tokens_details.cached_tokens when set
        self.ttft_s, self.tpot_s = ttft_s, tpot_s
        self.api_key = api_key
        self.model = model
        self.die_after_requests = die_after_requests
        self.requests: list[dict[str, Any]] = []  # bodies received (auth headers are not kept)
        self.auth_failures = 0
        self.in_flight = 0  # generations streaming now …
        self.max_in_flight = 0  # … and the most at once (a closed-loop client's cap shows here)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> MockServer:
        self._thread = threading.Thread(target=self._run, name="mock-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock server did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def kill(self) -> None:
        """Stop listening and cut every open stream mid-response (a server dying mid-run)."""
        if self._loop is None:
            return

        def _close() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()

        self._loop.call_soon_threadsafe(_close)

    def stop(self) -> None:
        if self._loop is None:
            return
        self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    # ---- HTTP --------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                self.auth_failures += 1
                await self._json(writer, 401, {"error": {"message": "invalid API key", "code": 401}})
                return
            if path.endswith("/health"):
                await self._json(writer, 200, {})
            elif path.endswith("/models"):
                await self._json(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
            elif method == "POST" and path.endswith(("/completions", "/chat/completions")):
                await self._stream(writer, json.loads(body or b"{}"), chat=path.endswith("/chat/completions"))
            else:
                await self._json(writer, 404, {"error": {"message": f"no route {path}"}})
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _json(writer: asyncio.StreamWriter, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + data)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, body: dict[str, Any], *, chat: bool) -> None:
        self.requests.append(body)
        if body.get("model") != self.model:
            await self._json(writer, 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        if self.die_after_requests is not None and len(self.requests) > self.die_after_requests:
            self.kill()
            return
        n = int(body.get("max_tokens") or 16)
        prompt = body.get("prompt")
        n_prompt = len(prompt) if isinstance(prompt, list) else len(str(prompt or body.get("messages", "")).split())
        ids = bool(body.get("return_token_ids"))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._generate(writer, n, n_prompt, ids, chat=chat)
        finally:
            self.in_flight -= 1

    async def _generate(self, writer: asyncio.StreamWriter, n: int, n_prompt: int, ids: bool, *, chat: bool) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + self.ttft_s + i * self.tpot_s
            await asyncio.sleep(max(due - time.perf_counter(), 0))
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length" if i == n - 1 else None}
            if chat:
                choice["delta"] = {"content": f" t{i}"}
            else:
                choice["text"] = f" t{i}"
                if ids:
                    choice["token_ids"] = [100 + i % 50]
            chunk = {"id": "mock", "object": "text_completion", "model": self.model, "choices": [choice]}
            if self.usage:
                chunk["usage"] = {"prompt_tokens": n_prompt, "completion_tokens": i + 1}
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await writer.drain()
        if self.usage:
            usage: dict[str, Any] = {"prompt_tokens": n_prompt, "completion_tokens": n}
            if self.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
            final = {"id": "mock", "choices": [], "usage": usage}
            writer.write(f"data: {json.dumps(final)}\n\n".encode())
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()


def main() -> None:
    ap = argparse.ArgumentParser(description="Mock OpenAI-compatible streaming server (fixed token pace).")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--ttft-s", type=float, default=0.005)
    ap.add_argument("--tpot-s", type=float, default=0.002)
    args = ap.parse_args()
    srv = MockServer(port=args.port, ttft_s=args.ttft_s, tpot_s=args.tpot_s).start()
    print(f"mock server on {srv.url} (model 'mock'); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
