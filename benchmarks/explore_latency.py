"""How long from moving a slider of ``aelab explore`` to the new image? The conv model, Olivetti.

    python benchmarks/explore_latency.py --olivetti-mat olivettifaces.mat \\
        --out benchmarks/results/cpu-2core-explore.json

Starts the explorer's real server in this process (``open_spaces``, ``create_app``, uvicorn on
a free loopback port) over a conv run (``--run DIR``, else one trained for one epoch: latency
does not depend on how well the model is trained). Then, for each client count in
``--clients``:

``browser``
    C pages in Debian's headless chromium (one browser context each) drag a slider at once:
    each dispatches ``--events`` ``input`` events, one every ``--interval-ms`` (a 60 Hz drag by
    default). The page's own ``window.aelab.latencies`` holds, per event, the milliseconds from
    the event's ``timeStamp`` to the new image drawn on ``#live``; the page keeps one decode in
    flight and coalesces the events made meanwhile. Reports p50/p90/p99/max/mean per C, the
    decodes the pages made and the server's batches (``app.state.batcher``).
``http``
    The server alone: C threads with a keep-alive ``http.client`` connection each POST
    ``--requests`` decodes back to back; round-trip p50/p99 and decodes/s in all.

Writes one JSON file (never over an earlier one) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from aelab.bench.machine import machine_info  # with cpu_flags()

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
    # C pages at once: none of them may have its timers throttled as a background page
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]  # fmt: skip
# In the page: `events` real input events on slider `index`, one every `interval` ms on an
# absolute schedule (a late timer does not push the later events back), a step each, bouncing
# between the slider's ends. Returns each event's timeStamp.
DRIVE = """async ([index, events, interval]) => {
  const input = document.getElementById(`slider-${index}`);
  const lo = Number(input.min), hi = Number(input.max), step = Number(input.step);
  let v = Number(input.value), dir = 1;
  const sent = [], start = performance.now() + interval;
  for (let k = 0; k < events; k++) {
    const wait = start + k * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (v + dir * step > hi || v + dir * step < lo) dir = -dir;
    v += dir * step;
    input.value = String(v);
    const e = new Event("input", { bubbles: true });
    sent.push(e.timeStamp);
    input.dispatchEvent(e);
  }
  return sent;
}"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_busy(seconds: float) -> float:
    """The fraction of the machine's CPU time spent busy over ``seconds`` (before we start)."""

    def sample() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
        return sum(f) - f[3] - f[4], sum(f)  # all but idle and iowait; all

    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(1, t1 - t0)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process (server and driver) and of all chromium processes."""
    tick, chromium = os.sysconf("SC_CLK_TCK"), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                chromium += int(fields[11]) + int(fields[12])
        except OSError:  # a process that ended meanwhile
            continue
    return {"this_process": time.process_time(), "chromium": chromium / tick}


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"count": len(a), "p50": p50, "p90": p90, "p99": p99, "max": a.max(), "mean": a.mean()}


def start_server(run_dir: Path, data_home: Path):
    import uvicorn

    from aelab.apps.explorer import open_spaces
    from aelab.apps.explorer.serve import bind, url_of
    from aelab.apps.explorer.server import create_app

    spaces = open_spaces(run_dir, data_home=data_home)
    app = create_app(spaces)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the explorer's server did not start in 60 s")
    return server, app, url_of(sock, "127.0.0.1"), spaces


async def poll(page, expression: str, timeout: float = 60.0) -> None:
    """Wait until ``expression`` is true in ``page`` (the page's CSP forbids wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.02)


async def browser_phase(url: str, app, clients: int, events: int, interval: float) -> dict:
    from playwright.async_api import async_playwright

    batcher = app.state.batcher
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        pages = []
        for _ in range(clients):
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.goto(url)
            pages.append(page)
        for page in pages:
            await poll(page, "window.aelab.ready && window.aelab.decodes >= 1")
        await asyncio.sleep(0.3)  # the first decode's own bookkeeping done
        for page in pages:
            await page.evaluate("window.aelab.latencies = []; window.aelab.decodes = 0")
        batches0, batcher.largest = batcher.batches, 0
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        sent = await asyncio.gather(
            *(page.evaluate(DRIVE, [i, events, interval]) for i, page in enumerate(pages))
        )
        done = f"window.aelab.latencies.length >= {events} || window.aelab.errors > 0"
        for page in pages:
            await poll(page, done)
        wall, cpu1 = time.perf_counter() - t0, cpu_seconds()
        read = "({l: window.aelab.latencies, d: window.aelab.decodes, e: window.aelab.errors})"
        per_page = [await page.evaluate(read) for page in pages]
        await browser.close()
    latencies = [x for r in per_page for x in r["l"]]
    gaps = np.concatenate([np.diff(s) for s in sent])
    return {
        "latency_ms": stats(latencies),
        "per_client_p50_ms": [float(np.median(r["l"])) for r in per_page],
        "events": sum(len(s) for s in sent),
        "decodes": sum(r["d"] for r in per_page),
        "page_errors": sum(r["e"] for r in per_page),
        "event_interval_ms": {"median": float(np.median(gaps)), "max": float(gaps.max())},
        "server_batches": batcher.batches - batches0,
        "server_largest_batch": batcher.largest,
        "seconds": wall,
        "cores_used": {k: (cpu1[k] - cpu0[k]) / wall for k in cpu0},  # of the machine's cores
    }


def http_phase(url: str, app, model: str, mean: list[float], clients: int, n: int) -> dict:
    host, port = url.split("//")[1].strip("/").split(":")
    path = f"/api/models/{model}/decode"
    barrier = threading.Barrier(clients + 1)
    times: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        rng = np.random.default_rng(i)
        codes = np.asarray(mean) + 0.05 * rng.standard_normal((n + 5, len(mean)))
        bodies = [json.dumps({"code": code.tolist()}) for code in codes]
        headers = {"Content-Type": "application/json"}
        for k, body in enumerate(bodies):
            if k == 5:  # five to warm the connection up, then all clients start together
                barrier.wait()
            start = time.perf_counter()
            conn.request("POST", path, body, headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or not data.startswith(b"\x89PNG"):
                failures.append(f"{r.status} {data[:200]!r}")
            if k >= 5:
                times[i].append((time.perf_counter() - start) * 1000)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    batcher = app.state.batcher
    barrier.wait()
    batches0, batcher.largest = batcher.batches, 0
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"decode failed: {failures[0]}")
    rtt = [x for ts in times for x in ts]
    return {
        "round_trip_ms": stats(rtt),
        "decodes_per_s": len(rtt) / wall,
        "server_batches": batcher.batches - batches0,
        "server_largest_batch": batcher.largest,
        "seconds": wall,
    }


def table(result: dict, clients: list[int]) -> None:
    print(f"{'clients':>7}  {'what':<22} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  notes")
    for c in clients:
        b, h = result["browser"][str(c)], result["http"][str(c)]
        cores = b["cores_used"]
        rows = [
            ("event->image (ms)", b["latency_ms"], f"{b['events']} events, {b['decodes']} "
             f"decodes, {b['server_batches']} batches (largest {b['server_largest_batch']}), "
             f"cores: chromium {cores['chromium']:.2f} server {cores['this_process']:.2f}"),
            ("HTTP round trip (ms)", h["round_trip_ms"], f"{h['decodes_per_s']:.0f} decodes/s, "
             f"largest batch {h['server_largest_batch']}"),
        ]  # fmt: skip
        for what, q, notes in rows:
            ps = " ".join(f"{q[k]:7.1f}" for k in ("p50", "p90", "p99", "max"))
            print(f"{c:>7}  {what:<22} {ps}  {notes}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/explore_latency.py")
    p.add_argument("--run", help="a conv run directory (default: train one, one epoch)")
    p.add_argument("--olivetti-mat", default=str(REPO / "tests/data/olivettifaces.mat"),
                   help="the original olivettifaces.mat (default: the tests' copy)")  # fmt: skip
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--events", type=int, default=300, help="input events per browser client")
    p.add_argument("--interval-ms", type=float, default=16.0, help="between input events")
    p.add_argument("--requests", type=int, default=300, help="decodes per HTTP client")
    p.add_argument("--clients", default="1,8", help="client counts, comma-separated")
    p.add_argument("--threads", type=int, help="torch threads of the server (default: torch's)")
    args = p.parse_args(argv)
    try:
        clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        clients = []
    for bad, problem in [
        (Path(args.out).exists(), f"--out {args.out} exists; choose a new file"),
        (not Path(args.olivetti_mat).is_file(), f"--olivetti-mat {args.olivetti_mat}: no file"),
        (shutil.which("chromium") is None, "no chromium on PATH (apt-get install chromium)"),
        (not clients or min(clients) < 1, f"--clients {args.clients!r}: expected e.g. 1,8"),
    ]:
        if bad:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    out = Path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    busy = cpu_busy(3.0)
    if busy > 0.2:
        log(f"warning: the machine is {busy:.0%} busy before the benchmark; numbers will suffer")
    chromium = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout
    result: dict = {
        "machine": {**machine_info("cpu"), "load_average_start": os.getloadavg(),
                    "cpu_busy_before": busy, "chromium": chromium.strip()},
        "torch": {"version": torch.__version__, "threads": torch.get_num_threads()},
        "settings": {**vars(args), "clients": clients, "model": "conv", "data": "olivetti"},
        "browser": {}, "http": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "olivettifaces.mat").write_bytes(Path(args.olivetti_mat).read_bytes())
        run_dir = Path(args.run) if args.run else Path(tmp) / "conv"
        if not args.run:
            log("training conv for one epoch")
            subprocess.run([sys.executable, "-m", "aelab", "train", "conv", "--data", "olivetti",
                            "--data-home", str(home), "--epochs", "1", "--out", str(run_dir),
                            "--quiet"], check=True)  # fmt: skip
        server, app, url, spaces = start_server(run_dir, home)
        model, space = next(iter(spaces.items()))
        result["settings"].update(run=str(args.run), latent_dim=space.dim, shape=space.shape)
        log(f"serving {model} ({space.dim}-unit code) at {url}")
        try:
            for c in clients:
                log(f"browser, {c} client(s), {args.events} events each")
                b = asyncio.run(browser_phase(url, app, c, args.events, args.interval_ms))
                result["browser"][str(c)] = b
                log(f"http, {c} client(s), {args.requests} requests each")
                h = http_phase(url, app, model, space.mean.tolist(), c, args.requests)
                result["http"][str(c)] = h
        finally:
            server.should_exit = True
    result["machine"]["load_average_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    table(result, clients)
    log(f"wrote {out}; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
