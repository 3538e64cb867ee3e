"""An OpenAI-compatible HTTP server over any heirloom Backend (behind `heirloom serve`).

Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`
(generation, and prompt scoring with `echo=True, logprobs>=0, max_tokens=0` for
backends declaring `supports_prompt_logprobs`). Errors are OpenAI-shaped JSON: 400 with a
message for a bad request, 404 for an unknown model or route, 500 for a bug.
Built on the stdlib `ThreadingHTTPServer`; one lock serialises backend calls
because models are not thread-safe. Concurrent generation requests are gathered
into shared calls (`batching.py`) when the backend takes per-prompt seeds
(`supports_prompt_seeds`: hf, vllm, openai), so a busy server runs batches instead of a queue of single requests.

Chat: a single user message is passed to the backend as a prompt with
`chat=None`, so it gets the model's own chat template (or, for base models, the
paper's QA template) exactly as local generation does. A backend declaring
`supports_messages = True` takes whole message lists, which serves system
messages and multi-turn history; any other backend answers those with a 400
instead of silently dropping part of the conversation.

Request schemas and validation: `protocol.py`. Left out: streaming, tools,
penalties and logit_bias (400), logprobs of generated tokens, authentication (bind to loopback), continuous
batching (a request that arrives mid-batch waits for the next one), prompt token counts in `usage` for generation.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import HeirloomError
from .base import Backend, Completion
from .batching import MicroBatcher
from .protocol import (ApiError, ChatRequest, CompletionRequest, PromptToken, message_text, parse_request,
                       sampling_params)

log = logging.getLogger("heirloom.server")
MAX_BODY = 16 * 1024 * 1024


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: Backend | None, host: str = "127.0.0.1", port: int = 8000,
                 model_name: str | None = None, handler: type[BaseHTTPRequestHandler] | None = None,
                 batching: bool = True):
        self.backend = backend  # may be attached after binding, so a busy port fails before a model loads
        self.model_name = model_name or (backend.model_id if backend else "model")
        self.lock = threading.Lock()
        self.batching = batching
        self._batcher: MicroBatcher | None = None
        self._batcher_lock = threading.Lock()
        self._sockets: set = set()
        self._sockets_lock = threading.Lock()
        try:
            super().__init__((host, port), handler or Handler)
        except OSError as e:
            raise HeirloomError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    # Track open connections so closing the server also ends idle keep-alive ones.
    def process_request(self, request, client_address):
        with self._sockets_lock:
            self._sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        super().server_close()
        if self._batcher is not None:
            self._batcher.close()
        with self._sockets_lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # --- routes ------------------------------------------------------------------
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": 0,
                                             "owned_by": "heirloom"}]}

    def chat(self, body: dict) -> dict:
        req = parse_request(ChatRequest, body, self.model_name)
        if req.logprobs:
            raise ApiError(400, "logprobs of generated tokens are not supported", param="logprobs")
        messages = [{"role": m.role, "content": message_text(m.content, i)} for i, m in enumerate(req.messages)]
        if self.backend.supports_messages:
            prompt = messages
        elif len(messages) == 1 and messages[0]["role"] == "user":
            prompt = messages[0]["content"]
        else:
            raise ApiError(400, f"model {self.model_name!r}: its {self.backend.name} backend takes one user message "
                           f"per chat request, got roles {[m['role'] for m in messages]} (system messages and "
                           "history need a backend with supports_messages)", param="messages")
        params = sampling_params(req, req.max_completion_tokens or req.max_tokens, default_max=256)
        comps = self._generate([prompt], req.n, params, chat=None)[0]
        choices = [{"index": j, "message": {"role": "assistant", "content": c.text},
                    "finish_reason": c.finish_reason, "logprobs": None} for j, c in enumerate(comps)]
        return self._response("chat.completion", "chatcmpl", choices, comps)

    def complete(self, body: dict) -> dict:
        req = parse_request(CompletionRequest, body, self.model_name)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise ApiError(400, "prompt is an empty list", param="prompt")
        if req.echo and req.logprobs is not None:
            if req.max_tokens != 0:
                raise ApiError(400, "echo with logprobs is served for prompt scoring only: set max_tokens=0",
                               param="max_tokens")
            return self._score(prompts)
        if req.logprobs is not None:
            raise ApiError(400, "logprobs of generated tokens are not supported", param="logprobs")
        if req.max_tokens == 0:
            raise ApiError(400, "max_tokens must be >= 1 (0 only for scoring, with echo and logprobs)",
                           param="max_tokens")
        params = sampling_params(req, req.max_tokens, default_max=16)  # OpenAI's legacy default
        outs = self._generate(prompts, req.n, params, chat=False)
        choices = [{"index": i * req.n + j, "text": (prompts[i] if req.echo else "") + c.text,
                    "finish_reason": c.finish_reason, "logprobs": None}
                   for i, comps in enumerate(outs) for j, c in enumerate(comps)]
        return self._response("text_completion", "cmpl", choices, [c for comps in outs for c in comps])

    def _score(self, prompts: list[str]) -> dict:
        if not self.backend.supports_prompt_logprobs:
            raise ApiError(400, f"model {self.model_name!r}: prompt scoring (echo with logprobs) needs a backend that "
                           f"returns per-token prompt log-probabilities; the {self.backend.name} backend does not",
                           param="logprobs")
        with self.lock:
            rows = self.backend.prompt_logprobs(prompts)
        choices = []
        for i, (prompt, tokens) in enumerate(zip(prompts, rows)):
            tops = [None if t.logprob is None else {t.text: t.logprob, t.top_text: t.top_logprob} for t in tokens]
            choices.append({"index": i, "text": prompt, "finish_reason": "length", "logprobs": {
                "tokens": [t.text for t in tokens], "token_logprobs": [t.logprob for t in tokens],
                "text_offset": [t.offset for t in tokens], "top_logprobs": tops}})
        used = sum(len(tokens) for tokens in rows)
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name, "choices": choices,
                "usage": {"prompt_tokens": used, "completion_tokens": 0, "total_tokens": used}}

    def _generate(self, prompts, n, params, chat) -> list[list[Completion]]:
        if self.batching and self.backend.supports_prompt_seeds:
            with self._batcher_lock:  # made on first use: the backend may be attached after binding
                if self._batcher is None:
                    self._batcher = MicroBatcher(self.backend, self.lock)
            return self._batcher.generate(prompts, n, params, chat)
        with self.lock:
            return self.backend.generate(prompts, k=n, params=params, chat=chat, progress=False)

    def _response(self, kind: str, prefix: str, choices: list, comps: list[Completion]) -> dict:
        counts = [c.num_tokens for c in comps]
        usage = {}
        if all(isinstance(c, int) or (isinstance(c, float) and math.isfinite(c)) for c in counts):
            usage = {"completion_tokens": int(sum(counts))}  # prompt tokens: the Backend interface does not say
        return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
                "model": self.model_name, "choices": choices, "usage": usage}


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's methods; subclass it to inject faults in tests."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse pooled connections
    server_version = "heirloom"
    server: OpenAIServer

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self.send_json(200, self.server.models())
        elif path == "/health":
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, ApiError(404, f"no route GET {path}").payload())

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        routes = {"/v1/chat/completions": self.server.chat, "/v1/completions": self.server.complete}
        try:
            body = self.read_json()
            if path not in routes:
                raise ApiError(404, f"no route POST {path}")
            self.send_json(200, routes[path](body))
        except ApiError as e:
            self.send_json(e.status, e.payload())
        except HeirloomError as e:  # the backend refused the input (too long, no chat template, ...)
            self.send_json(400, ApiError(400, str(e)).payload())
        except Exception as e:
            log.exception("request %s failed", path)
            self.send_json(500, ApiError(500, f"{type(e).__name__}: {e}").payload())

    def read_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise ApiError(400, f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            raise ApiError(400, f"request body is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload, allow_nan=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout): nothing to answer

    def log_message(self, format, *args):
        log.info("%s %s", self.address_string(), format % args)


@contextmanager
def serve_in_thread(backend: Backend, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                    handler: type[BaseHTTPRequestHandler] | None = None, batching: bool = True):
    """Run a server in a background thread (port 0: an ephemeral one); shut it down on exit."""
    server = OpenAIServer(backend, host, port, model_name, handler, batching)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = ["ApiError", "Handler", "OpenAIServer", "PromptToken", "serve_in_thread"]
