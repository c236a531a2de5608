"""8. serving: requests/s and p50/p99 latency, ``runlake models serve`` vs ``mlflow models serve``.

One small sklearn model (LogisticRegression on 8 float features) saved once with
``runlake.sklearn.save_model``; both servers serve that same directory (MLflow with
``--env-manager local`` from its venv, where scikit-learn and cloudpickle are pinned to this
venv's versions so the pickle loads). Client processes (2, each with 8 keep-alive
connections: 16 requests in flight) send ``dataframe_split`` requests of 1 and of 100 rows
for a fixed time after a start barrier; a sequential client (one connection) gives the
unloaded latency. The client is a raw-socket HTTP/1.1 loop on this interpreter for both
servers, so neither pays for a heavier client library.

Configurations: 1 worker (the default of both servers) and 2 workers (one per core here;
MLflow's docker image defaults to one per CPU). runlake is also run with ``--batching off``
at 1 worker, to show what micro-batching contributes. Every server's first answer is
checked against the model's own ``predict``. Figures are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
from runlake.serving.process import ServingProcess

from bench import mlflow_env
from bench.common import Ctx, Row, fan_out, percentile
from bench.servers import free_port, tree_rss_mb

NAME = "serving"
FEATURES = [f"f{i}" for i in range(8)]
#: Client processes x keep-alive connections each: 16 requests in flight.
PROCS, CONNS = 2, 8
_START_TIMEOUT_S = 300.0

#: A keep-alive HTTP/1.1 client on raw sockets: send, read one answer, send again.
CLIENT = """
import selectors, socket
req = A["request"].encode("latin-1")
sel = selectors.DefaultSelector()
conns = {}
for _ in range(A["conns"]):
    s = socket.create_connection(("127.0.0.1", A["port"]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    conns[s] = [b"", 0.0]
    sel.register(s, selectors.EVENT_READ)
begin = ready()
deadline = begin + A["seconds"]
lat = []
errors = 0
for s, st in conns.items():
    st[1] = time.perf_counter()
    s.sendall(req)
while time.time() < deadline:
    for key, _ in sel.select(0.2):
        s = key.fileobj
        st = conns[s]
        st[0] += s.recv(1 << 20)
        buf = st[0]
        end = buf.find(b"\\r\\n\\r\\n")
        if end < 0:
            continue
        head = buf[:end].lower()
        i = head.find(b"content-length:")
        j = head.find(b"\\r\\n", i)
        size = int(head[i + 15 : j if j > 0 else None])
        if len(buf) < end + 4 + size:
            continue
        if not head.startswith(b"http/1.1 200"):
            errors += 1
        st[0] = buf[end + 4 + size :]
        now = time.perf_counter()
        lat.append(round((now - st[1]) * 1e6))
        st[1] = now
        s.sendall(req)
result(lat=lat, errors=errors, begin=begin, end=time.time())
"""


def _request(port: int, rows: pd.DataFrame) -> str:
    body = json.dumps(
        {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    )
    return (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )


def _load(port: int, rows: pd.DataFrame, seconds: float, procs: int, conns: int) -> dict[str, Any]:
    """Requests/s, p50/p99 (ms) and errors of ``procs`` x ``conns`` keep-alive clients."""
    args = {"port": port, "request": _request(port, rows), "seconds": seconds, "conns": conns}
    res = fan_out(CLIENT, [args] * procs, barrier=True, timeout_s=seconds + 120)
    lat = [x / 1000 for r in res for x in r["lat"]]
    wall = max(r["end"] for r in res) - res[0]["start"]
    return {
        "rps": len(lat) / wall if wall > 0 else 0.0,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "errors": sum(r["errors"] for r in res),
        "n": len(lat),
    }


def _post(port: int, rows: pd.DataFrame) -> Any:
    body = json.dumps(
        {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@dataclass
class MlflowModelServer:
    """``mlflow models serve -m DIR --env-manager local`` from the MLflow venv."""

    model_dir: Path
    workers: int
    log: Path
    port: int = 0
    ready_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowModelServer:
        pins = [f"{d}=={metadata.version(d)}" for d in ("scikit-learn", "cloudpickle", "numpy")]
        python = Path(mlflow_env.python(pins))
        env = mlflow_env.env()
        env.update(
            MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true",  # MLflow 3.17 refuses pickles otherwise
            PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",  # it execs `uvicorn`
        )
        self.port = free_port()
        cmd = [
            str(python.parent / "mlflow"), "models", "serve", "-m", str(self.model_dir),
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port),
            "-w", str(self.workers),
        ]  # fmt: skip
        t0 = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = time.perf_counter() - t0
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"mlflow models serve did not become ready:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        """SIGTERM to the tree (mlflow → uvicorn → workers), SIGKILL of what is left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(True)]
        except psutil.Error:
            tree = []
        for p in reversed(tree):
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=20)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc.wait(10)

    def __enter__(self) -> MlflowModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _save_model(root: Path) -> tuple[Path, pd.DataFrame, Any]:
    import runlake.pyfunc
    import runlake.sklearn
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(1000, len(FEATURES))), columns=FEATURES)
    clf = LogisticRegression().fit(x, (x["f0"] + x["f1"] - x["f2"] > 0).astype(int))
    path = root / "model"
    runlake.sklearn.save_model(clf, path, input_example=x.head(3))
    return path, x, runlake.pyfunc.load_model(path)


def _measure(
    ctx: Ctx, what: str, port: int, requests: dict[int, pd.DataFrame], seconds: float
) -> dict[str, dict[str, Any]]:
    """The three loads on one running server: 1-row and 100-row at 16 in flight, sequential."""
    out: dict[str, dict[str, Any]] = {}
    for n, rows in requests.items():
        _load(port, rows, 1.0, 1, 4)  # warm-up: first calls, caches, connection set-up
        ctx.say(f"serving: {what}, {n}-row requests, {PROCS * CONNS} in flight, {seconds:.0f} s")
        out[f"{n}:conc"] = _load(port, rows, seconds, PROCS, CONNS)
    ctx.say(f"serving: {what}, 1-row requests, one sequential client")
    out["1:seq"] = _load(port, requests[1], seconds / 2, 1, 1)
    return out


def _fmt(m: dict[str, Any]) -> str:
    err = f", {m['errors']} errors" if m["errors"] else ""
    return f"{m['rps']:,.0f} req/s, p50 {m['p50']:.2f} ms, p99 {m['p99']:.2f} ms{err}"


def run(ctx: Ctx) -> list[Row]:
    seconds = float(ctx.pick(8.0, 20.0))
    root = ctx.dir("serving")
    model_dir, x, model = _save_model(root)
    requests = {1: x.iloc[[7]], 100: x.iloc[100:200]}
    want = {n: model.predict(rows).tolist() for n, rows in requests.items()}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    details: list[str] = []

    configs: list[tuple[str, list[str]]] = [
        ("runlake 1 worker", ["--workers", "1"]),
        ("runlake 2 workers", ["--workers", "2"]),
        ("runlake 1 worker, --batching off", ["--workers", "1", "--batching", "off"]),
    ]
    for label, extra in configs:
        ctx.say(f"serving: starting {label}")
        with ServingProcess(["-m", str(model_dir), "--port", "0", *extra]).start() as s:
            for n, rows in requests.items():
                got = _post(s.port, rows)["predictions"]
                assert got == want[n], f"{label} answered {got[:5]}, the model {want[n][:5]}"
            results[label] = _measure(ctx, label, s.port, requests, seconds)
            rss = tree_rss_mb(s.pid)
            details.append(f"{label}: ready in {s.ready_s:.1f} s, RSS {rss:.0f} MiB after the run")

    if ctx.mlflow:
        for workers in (1, 2):
            label = f"MLflow {workers} worker{'s' if workers > 1 else ''}"
            ctx.say(f"serving: starting {label} (mlflow models serve)")
            try:
                with MlflowModelServer(
                    model_dir, workers, root / f"mlflow-{workers}.log"
                ).start() as m:
                    for n, rows in requests.items():
                        got = _post(m.port, rows)["predictions"]
                        assert got == want[n], f"{label} answered {got[:5]}"
                    results[label] = _measure(ctx, label, m.port, requests, seconds)
                    assert m.proc is not None
                    rss = tree_rss_mb(m.proc.pid)
                    details.append(
                        f"{label}: ready in {m.ready_s:.1f} s, RSS {rss:.0f} MiB after the run"
                    )
            except Exception as exc:  # one failing configuration must not hide the others
                ctx.say(f"serving: {label} failed: {exc}")
    return _rows(results, details, seconds)


def _rows(
    results: dict[str, dict[str, dict[str, Any]]], details: list[str], seconds: float
) -> list[Row]:
    rows: list[Row] = []
    for workers in (1, 2):
        rl = f"runlake {workers} worker{'s' if workers > 1 else ''}"
        ml = f"MLflow {workers} worker{'s' if workers > 1 else ''}"
        default = " (both defaults)" if workers == 1 else ""
        for n in (1, 100):
            r, m = results.get(rl, {}).get(f"{n}:conc"), results.get(ml, {}).get(f"{n}:conc")
            if r is None:
                continue
            tput = Row(
                NAME,
                f"serving {n}-row requests/s, {PROCS * CONNS} in flight, {workers} worker"
                f"{'s' if workers > 1 else ''}{default}",
                r["rps"],
                "req/s",
                m["rps"] if m else None,
                target="≥ 2x MLflow",
            )
            tput.met = tput.ratio() is not None and (tput.ratio() or 0) >= 2
            p99 = Row(
                NAME,
                f"serving {n}-row p99 latency, {PROCS * CONNS} in flight, {workers} worker"
                f"{'s' if workers > 1 else ''}",
                r["p99"],
                "ms",
                m["p99"] if m else None,
                higher_is_better=False,
                target="below MLflow",
            )
            p99.met = None if m is None else r["p99"] < m["p99"]
            tput.detail.append(f"runlake: {_fmt(r)}")
            if m:
                tput.detail.append(f"MLflow: {_fmt(m)}")
            rows += [tput, p99]
    seq_r = results.get("runlake 1 worker", {}).get("1:seq")
    seq_m = results.get("MLflow 1 worker", {}).get("1:seq")
    if seq_r:
        seq = Row(
            NAME,
            "serving 1-row p50 latency, one sequential client, 1 worker",
            seq_r["p50"],
            "ms",
            seq_m["p50"] if seq_m else None,
            higher_is_better=False,
        )
        seq.detail.append(f"runlake: {_fmt(seq_r)}")
        if seq_m:
            seq.detail.append(f"MLflow: {_fmt(seq_m)}")
        rows.append(seq)
    off = results.get("runlake 1 worker, --batching off", {})
    on = results.get("runlake 1 worker", {})
    if rows and off and on:
        for n in (1, 100):
            a, b = on[f"{n}:conc"], off[f"{n}:conc"]
            rows[0].detail.append(
                f"micro-batching, {n}-row requests, 1 worker: on {_fmt(a)}; off {_fmt(b)} "
                f"({a['rps'] / b['rps']:.1f}x the requests/s)"
            )
    if rows:
        rows[0].detail += details
        rows[0].detail.append(
            f"{PROCS} client processes x {CONNS} keep-alive connections, {seconds:.0f} s per "
            f"figure (sequential: {seconds / 2:.0f} s); load average at the end "
            + ", ".join(f"{v:.1f}" for v in os.getloadavg())
        )
    return rows
