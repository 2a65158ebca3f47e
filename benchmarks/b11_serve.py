"""B11 — `automl serve` under load: predict requests per second and latency with 1 and 8
concurrent clients, and the studies and study pages with 2,000 trials in the store.

A real server (`automl serve`, uvicorn) serves a digits CNN exported from a one-trial search of
`spaces/cnn.py`; each request posts one 8×8 PNG to `POST /models/digits/predict`. The first
request (which loads the model) is not counted. Then the same server reads a store holding a
2,000-trial study (B7's generator) and `GET /`, `GET /studies/bench` and `GET /api/studies` are
timed (median of 5, after one warm-up).

    python benchmarks/b11_serve.py [--requests 200]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.b7_cli_latency import make_study  # noqa: E402 - after the path is set
from benchmarks.common import table, write_result  # noqa: E402


def automl(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "automl", *args], cwd=cwd, env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def serve(cwd: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`automl serve ARGS` on a free port, once it answers; the process and its base URL.
    (The serve tests start their servers with it too.)"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "automl", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/api/health", timeout=1)
            return process, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("automl serve did not start") from None
            time.sleep(0.2)


def load(base: str, image: bytes, clients: int, requests: int) -> dict[str, Any]:
    """`requests` predict calls spread over `clients` threads; latency of each."""
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        with httpx.Client(timeout=60) as http:
            for _ in range(count):
                started = time.perf_counter()
                response = http.post(
                    base + "/models/digits/predict",
                    files={"files": ("d.png", image, "image/png")},
                )
                response.raise_for_status()
                assert response.json()["predictions"][0]["top"]
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def page_times(base: str, paths: list[str], repeats: int = 5) -> dict[str, float]:
    import httpx

    times = {}
    for path in paths:
        httpx.get(base + path, timeout=60).raise_for_status()  # warm-up
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            httpx.get(base + path, timeout=60).raise_for_status()
            samples.append(time.perf_counter() - started)
        times[path] = statistics.median(samples)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    pixels = np.round(load_digits().images[7] * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = buffer.getvalue()
    results: dict[str, Any] = {"settings": vars(args)}
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("AUTOML_STORAGE", None)
        automl(
            "search", str(REPO / "spaces" / "cnn.py"), "--trials", "1", "--epochs", "2",
            "--workers", "1", "--no-retrain", "--quiet", cwd=cwd, env=env,
        )  # fmt: skip
        (cwd / "models").mkdir()
        automl("export", "cnn", "-o", "models/digits", "--format", "keras", cwd=cwd, env=env)
        process, base = serve(cwd, env, "--spaces", ".")
        try:
            import httpx

            started = time.perf_counter()
            httpx.post(
                base + "/models/digits/predict",
                files={"files": ("d.png", image, "image/png")},
                timeout=120,
            ).raise_for_status()
            results["first_request_s"] = time.perf_counter() - started
            results["predict"] = [load(base, image, c, args.requests) for c in (1, 8)]
        finally:
            process.terminate()
            process.wait()
        big = cwd / "big"
        (big / "runs").mkdir(parents=True)
        make_study(f"sqlite:///{big / 'runs' / 'automl.db'}", args.trials)
        process, base = serve(big, env, "--spaces", ".")
        try:
            results["pages_s"] = page_times(base, ["/", "/api/studies", "/studies/bench"])
            results["study_api_s"] = page_times(
                base, ["/api/studies/bench", "/api/studies/bench/trials"]
            )
        finally:
            process.terminate()
            process.wait()
    rows = [
        [r["clients"], r["requests"], f"{r['per_second']:.1f}", f"{r['p50_ms']:.1f}",
         f"{r['p99_ms']:.1f}"]
        for r in results["predict"]
    ]  # fmt: skip
    print(f"first request (loads the model): {results['first_request_s']:.2f} s")
    print(table(rows, ["clients", "requests", "requests/s", "p50 ms", "p99 ms"]))
    times = {**results["pages_s"], **results["study_api_s"]}
    print(table([[k, f"{v:.3f}"] for k, v in times.items()], [f"{args.trials} trials", "s"]))
    write_result("b11_serve", results)


if __name__ == "__main__":
    main()
