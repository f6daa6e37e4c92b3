"""Benchmark: the recommender over HTTP on 127.0.0.1 with a 100k-title catalog.

Three servers, up together in the same run, on the same machine and data:

* ``(a) constant``: the same KServe ModelServer (same request parsing) answering a constant list:
  the framework floor;
* ``(b) in-process``: ``flywheel serve`` with the defaults — features, two-tower retrieval over the
  whole catalog (``candidates.index: auto``: the inverted-file index from 100k titles), ranker
  in-process, business rules, prediction log; with ``--exact`` also the same server searching the
  catalog exactly (``candidates.index: exact``);
* ``(c) triton``: ``flywheel serve --triton`` — the same path with the ranking on a local
  tritonserver (python backend running the exported TorchScript ranker).

The requests go to the users of the bundle's training window in turn (history, exclusions of
what they saw, item-to-item candidates), every fifth one to a user nobody knows (cold start).
For each: p50 / p99 of ``--requests`` sequential requests from one client, and the throughput of
``--clients`` concurrent clients (threads, each its own keep-alive connection, JSON bodies) for
``--duration`` seconds, measured in ``--rounds`` rounds in which the servers take turns (each its
share of the requests, then each its share of the concurrent run; see :func:`measure_in_rounds`):
the machine is shared and its speed drifts from one minute to the next, so servers measured one
after the other compared minutes as much as paths. Prints the figures, the ratios (b)/(a) and
(c)/(b), and the goals.
The model is a small bundle trained on a catalog grown to ``--catalog`` titles (titles nobody
interacted with are embedded from their content, as cold-start items are; their genres, creators
and synopses are mixed, so the embeddings are as many as the titles). Before the servers, the
inverted-file index's recall of the two-tower candidates and its time per query against the exact
product, in the bench's process.

    .venv/bin/python bench/bench_serving.py            # about 2-3 minutes
    .venv/bin/python bench/bench_serving.py --skip-triton --exact
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def constant_server(port: int) -> None:
    """(a): the model server with the recommender's request parsing and a constant answer."""
    sys.argv = sys.argv[:1]  # KServe parses the command line when imported
    from kserve import InferOutput, InferRequest, InferResponse, Model

    from flywheel.serving.protocol import TensorIn, parse_request
    from serving.server import run_model_server

    items = [f"c{i:05d}" for i in range(10)]

    class ConstantModel(Model):
        def __init__(self) -> None:
            super().__init__("recommender")
            self.ready = True

        def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
            tensors = [
                TensorIn(t.name, t.datatype, list(t.shape), np.asarray(t.as_numpy()).reshape(-1).tolist())
                for t in payload.inputs
            ]
            request = parse_request(tensors, default_k=10, max_k=100, max_exclude=1000)
            outputs = [
                InferOutput("item_id", [request.k], "BYTES", data=items[: request.k]),
                InferOutput("score", [request.k], "FP32", data=[1.0] * request.k),
            ]
            return InferResponse(payload.id or "constant", "recommender", outputs)

    run_model_server(ConstantModel(), host="127.0.0.1", http_port=port, grpc_port=0)  # type: ignore[arg-type]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int, home: Path, timeout_s: float = 300) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/recommender/ready", timeout=1) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise TimeoutError(f"server not ready in {timeout_s} s: {(home / 'server.log').read_text()[-2000:]}")


def body(user: str, k: int = 10) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": [user]},
                {"name": "k", "datatype": "INT32", "shape": [1], "data": [k]},
            ]
        }
    ).encode()


BODIES: list[bytes] = []
"""The requests, in turn: the users the model was trained on, every fifth one a user nobody knows."""
HEADERS = {"Content-Type": "application/json"}


def call(conn: http.client.HTTPConnection, n: int) -> float:
    start = time.perf_counter()
    conn.request("POST", "/v2/models/recommender/infer", BODIES[n % len(BODIES)], HEADERS)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - start


def many_clients(port: int, clients: int, duration_s: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + duration_s

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = index * 37
        while time.monotonic() < stop:
            call(conn, n)
            counts[index] += 1
            n += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - begin)


def stage_means(port: int) -> str:
    """Mean seconds per stage of the recommend path, from the server's /metrics (empty for (a))."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flywheel_serving_stage_seconds_sum") or line.startswith(
            "flywheel_serving_stage_seconds_count"
        ):
            name, value = line.rsplit(" ", 1)
            stage = name.split('stage="')[1].split('"')[0]
            (sums if "_sum" in name else counts)[stage] = float(value)
    return "  ".join(f"{stage} {1000 * sums[stage] / counts[stage]:.1f} ms" for stage in sums if counts.get(stage))


def build_bundle(folder: Path, catalog_size: int) -> tuple[Path, list[str]]:
    """The bundle and the users of its training window (the catalog grown with mixed content: as
    many distinct embeddings as titles, as a real catalog has)."""
    from tests.support.recommender import write_bundle

    bundle, window = write_bundle(folder, catalog_size=catalog_size, mixed=True)
    return bundle, sorted(window["user_id"].astype(str).unique())


def with_index(bundle: Path, folder: Path, index: str) -> Path:
    """The bundle with its two-tower source searching the catalog by ``index`` (``candidates.index``)."""
    shutil.copytree(bundle, folder)
    configs = json.loads((folder / "configs.json").read_text(encoding="utf-8"))
    configs["candidates"]["index"] = index
    (folder / "configs.json").write_text(json.dumps(configs), encoding="utf-8")
    return folder


def index_figures(bundle: Path, users: list[str]) -> None:
    """The inverted-file index against the exact product over the bundle's catalog, in this process:
    recall of the two-tower candidates and the time of one query as a request runs it (the bundle's
    own users)."""
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    from flywheel.models.bundle import ModelBundle
    from flywheel.models.stack import Recommender
    from flywheel.models.two_tower import IvfIndex, TopKIndex, embed_users

    torch.set_num_threads(1)
    threadpool_limits(1)  # as the server
    catalog = pd.read_parquet(bundle / "catalog.parquet")
    version = ModelBundle.load(bundle)
    ivf = replace(version, candidates_config=version.candidates_config.model_copy(update={"index": "ivf"}))
    started = time.perf_counter()
    top_k = Recommender(ivf, catalog=catalog)
    built = time.perf_counter() - started
    index = top_k.index
    assert isinstance(index, IvfIndex)
    exact = TopKIndex(index.content_ids, index.embeddings, index.bias, index.temperature)
    embedded = embed_users(top_k.retrieval, top_k.queries(users, np.full(len(users), top_k.end_ms)), top_k.spec)
    queries = [embedded[q : q + 1] for q in range(len(users))]
    n = top_k.config.candidates.two_tower
    recall = []
    for query in queries:
        got, want = index.scores(query).numpy()[0], exact.scores(query).numpy()[0]
        recall.append(len(set(np.argsort(-got)[:n]) & set(np.argsort(-want)[:n])) / n)
    times = {}
    # what a request runs: the exact product's [N] row; the index's found titles and their logits
    for name, search in (("exact", exact.scores), ("ivf", index.found_logits)):
        search(queries[0])
        begin = time.perf_counter()
        for i in range(300):
            search(queries[i % len(queries)])
        times[name] = (time.perf_counter() - begin) / 300 * 1000
    print(
        f"two-tower index over {len(catalog)} titles: ivf with {index.lists} lists, probe {index.probe},"
        f" depth {index.depth} (the model's load with it {built:.1f} s): recall@{n} of the exact"
        f" candidates {np.mean(recall):.3f} (min {np.min(recall):.2f}, {len(recall)} users); one query:"
        f" exact {times['exact']:.3f} ms, ivf {times['ivf']:.3f} ms ({times['exact'] / times['ivf']:.2f}x)"
    )


def measure_in_rounds(
    servers: list[tuple[str, int, subprocess.Popen[bytes]]], requests: int, clients: int, duration: float, rounds: int
) -> dict[str, tuple[float, float, float]]:
    """p50 / p99 of one client and the throughput of ``clients`` for each server, measured in
    ``rounds`` rounds: in each round every server in turn gets its share of the sequential requests
    (after a few unmeasured ones, so each block starts warm), then every server in turn its share of
    the concurrent run; the order turns from round to round. The machine's speed drifts from one
    minute to the next (other jobs share it): spread over the same minutes, the servers see the
    same machine, so the ratios compare the paths rather than the minutes each one ran in."""
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in servers}
    served = dict.fromkeys(latencies, 0.0)
    seconds = dict.fromkeys(latencies, 0.0)
    share, rest = divmod(requests, rounds)
    for _, port, _ in servers:  # the first calls (TorchScript's executor settles in its first runs)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(30):
            call(conn, n)
        conn.close()
    for r in range(rounds):
        turn = servers[r % len(servers) :] + servers[: r % len(servers)]
        for name, port, _ in turn:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for n in range(10):
                call(conn, r * 7 + n)
            latencies[name] += [call(conn, r * share + n) for n in range(share + (rest if r == 0 else 0))]
            conn.close()
        for name, port, _ in turn:
            rate = many_clients(port, clients, duration / rounds)
            served[name] += rate * duration / rounds
            seconds[name] += duration / rounds
    results = {}
    for name, port, _ in servers:
        p50, p99 = (float(np.percentile(latencies[name], q) * 1000) for q in (50, 99))
        rps = served[name] / seconds[name]
        results[name] = (p50, p99, rps)
        print(f"{name:16s} 1 client p50 {p50:7.2f} ms  p99 {p99:7.2f} ms   {clients} clients {rps:8.1f} req/s")
        stages = stage_means(port)
        if stages:
            print(f"{'':16s} mean per stage (one client and the concurrent run): {stages}")
    return results


def request_bodies(known: list[str]) -> list[bytes]:
    """Known users with a new one after every four (cold start: no history, content-only candidates)."""
    users: list[str] = []
    for n, user in enumerate(known):
        users.append(user)
        if n % 4 == 3:
            users.append(f"new-user-{n:04d}")
    return [body(user) for user in users]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=600, help="sequential requests of the one-client run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of each server's concurrent run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds the servers alternate in (see measure_in_rounds)")
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument(
        "--exact", action="store_true", help="also (b) searching the catalog exactly (candidates.index: exact)"
    )
    parser.add_argument("--constant-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.constant_server:
        constant_server(args.constant_server)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bundle, users = build_bundle(work / "bundle", args.catalog)
    BODIES.extend(request_bodies(users))
    print(
        f"catalog {args.catalog} titles; {args.requests} sequential requests;"
        f" {args.clients} clients x {args.duration} s; the servers take turns in {args.rounds} rounds"
    )
    print("(the machine is shared with other jobs: compare the ratios of this one run)")
    index_figures(bundle, users)
    serve = [sys.executable, "-m", "flywheel.cli.main", "serve", "--bundle", str(bundle), "--features", "none"]
    cases: list[tuple[str, list[str]]] = [
        ("(a) constant", [sys.executable, str(Path(__file__).resolve()), "--constant-server", "{port}"]),
        ("(b) in-process", [*serve, "--http-port", "{port}", "--grpc-port", "0"]),
    ]
    if args.exact:
        exact = [*serve[:4], "--bundle", str(with_index(bundle, work / "exact", "exact")), *serve[6:]]
        cases.append(("(b) exact index", [*exact, "--http-port", "{port}", "--grpc-port", "0"]))
    if not args.skip_triton:
        cases.append(("(c) triton", [*serve, "--http-port", "{port}", "--grpc-port", "0", "--triton"]))
    servers: list[tuple[str, int, subprocess.Popen[bytes]]] = []
    try:
        for name, template in cases:  # all of them up at once: the rounds below alternate them
            port = free_port()
            command = [part.replace("{port}", str(port)) for part in template]
            home = work / "-".join("".join(c if c.isalnum() else " " for c in name).split())  # its own log
            servers.append((name, port, start(command, port, home)))
        results = measure_in_rounds(servers, args.requests, args.clients, args.duration, args.rounds)
    finally:
        for _, _, process in servers:
            process.terminate()
        for _, _, process in servers:
            process.wait(timeout=60)
    a, b = results["(a) constant"], results["(b) in-process"]
    print(f"ratio (b)/(a): p50 {b[0] / a[0]:.2f}x  p99 {b[1] / a[1]:.2f}x  throughput {b[2] / a[2]:.2f}x")
    if "(b) exact index" in results:
        e = results["(b) exact index"]
        print(f"ratio (b)/(b exact): p50 {b[0] / e[0]:.2f}x  p99 {b[1] / e[1]:.2f}x  throughput {b[2] / e[2]:.2f}x")
    goals = [
        ("(b) p99 <= 10 ms", b[1] <= 10.0),
        ("(b) p99 <= 3x (a) p99", b[1] <= 3 * a[1]),
        (f"(b) >= 200 req/s at {args.clients} clients", b[2] >= 200),
    ]
    if "(c) triton" in results:
        c = results["(c) triton"]
        print(f"ratio (c)/(b): p50 {c[0] / b[0]:.2f}x  p99 {c[1] / b[1]:.2f}x  throughput {c[2] / b[2]:.2f}x")
        goals.append(("(c) p99 <= 1.5x (b) p99", c[1] <= 1.5 * b[1]))
    for goal, met in goals:
        print(f"  {'met   ' if met else 'MISSED'} {goal}")


if __name__ == "__main__":
    main()
