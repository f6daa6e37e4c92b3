"""The request path's models, eager against TorchScript, on one and two request threads.

A request runs the ranker on a few hundred candidate rows and the user tower on one user. Eager,
each of their dozens of small operations is dispatched from Python with the GIL held between them,
so two request threads take turns; compiled with TorchScript
(:func:`flywheel.models.inference.for_requests`, what the request path and the in-process ranker
use) the whole forward runs in the TorchScript interpreter without the GIL, with the same bits.

For each model and each way: forwards per second on one thread and on two (each thread its own
requests, ``--seconds`` each), the two-thread scaling, and TorchScript / eager. The inputs are the
request path's own, for the users of the serving bench's bundle (``--catalog`` titles).

    .venv/bin/python bench/bench_request_models.py [--catalog 100000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rate(module: Any, inputs: list[tuple[torch.Tensor, ...]], threads: int, seconds: float) -> float:
    """Forwards per second of ``threads`` threads calling ``module`` on ``inputs`` in turn."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def run(index: int) -> None:
        n = index
        with torch.inference_mode():
            while time.perf_counter() < stop:
                module(*inputs[n % len(inputs)])
                n += 1
                counts[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    begin = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the server: one request per core
    sys.setswitchinterval(0.001)  # the server's default GIL switch interval

    from flywheel.models.inference import for_requests
    from flywheel.serving.features import StaticFeatures
    from flywheel.serving.recommender import Recommender
    from tests.support.recommender import write_bundle

    folder, window = write_bundle(Path(tempfile.mkdtemp(prefix="bench-models-")) / "bundle", catalog_size=args.catalog)
    recommender = Recommender.from_folder(folder, features=StaticFeatures())
    path = recommender.path
    users = sorted(window["user_id"].astype(str).unique())[:60] + [f"new-user-{n}" for n in range(15)]
    queries = [path.query(user) for user in users]
    requests = [path.candidates(query) for query in queries]
    ranker_inputs = [tuple(torch.from_numpy(x) for x in path.ranker_inputs(r)) for r in requests]
    tower_inputs = [path._user_inputs(query) for query in queries]
    rows = sum(len(r.rows) for r in requests) / len(requests)
    print(
        f"catalog {args.catalog} titles; {len(users)} users;"
        f" {rows:.0f} candidate rows a request; {args.seconds} s a case"
    )
    models = [
        ("ranker", recommender.bundle.ranker, ranker_inputs),
        ("user tower", recommender.top_k.retrieval.user_tower, tower_inputs),
    ]
    for name, module, inputs in models:
        module.eval()
        figures = {}
        for way, compiled in (("eager", module), ("TorchScript", for_requests(module))):
            one, two = rate(compiled, inputs, 1, args.seconds), rate(compiled, inputs, 2, args.seconds)
            figures[way] = (one, two)
            print(f"{name:10s} {way:11s} 1 thread {one:8.0f}/s  2 threads {two:8.0f}/s  scaling {two / one:.2f}x")
        (e1, e2), (s1, s2) = figures["eager"], figures["TorchScript"]
        print(f"{name:10s} TorchScript / eager: 1 thread {s1 / e1:.2f}x  2 threads {s2 / e2:.2f}x")


if __name__ == "__main__":
    main()
