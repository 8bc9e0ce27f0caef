"""Soak and faults for ``sagedock serve`` (issue 11 section 6): a script, not a timed test.

Starts ``sagedock serve`` as a user would (the console script, nginx in front, 2 workers, the
default settings but for the port, a 1 MB payload limit and a 10 s graceful timeout; a small
user model with ``model_fn``/``predict_fn`` written to a temp dir) and runs three phases:

1. **Soak**: ``--seconds`` (600) at ``--concurrency`` (64) kept-alive connections (asyncio,
   raw HTTP/1.1 in a thread of this process), a mix of valid requests (JSON and CSV rows) and
   invalid ones (bad JSON, an unknown content type, an oversized body, garbage heads, TLS bytes
   on the plain port, a bad Content-Length, a URI over 8 KB, an unknown path). Reported: count
   per status for valid and invalid requests, throughput and latency, the CPU the server, the
   load generator and the machine's other users took, the server log's error lines, and the
   RSS and open descriptors of every process of the tree (serve, nginx master and workers, the
   model server master and workers) after the warm-up and at the end - the same processes,
   idle both times (the load stopped, its connections closed and settled). Targets: every
   valid request 200 with the right body, every invalid one refused with its own 4xx (or its
   connection closed), none hanging; every RSS within 5 %; no descriptor leaked (no more files
   or pipes, no socket whose other end nobody holds, no TCP connection left); no process
   replaced; no traceback or unexpected error logged.
2. **Kill -9 a worker mid-request** (``--kills`` times) under load: a marked request sleeps in
   a worker, which is killed while it runs. Targets: exactly the marked requests fail (one per
   kill: the worker serves one request at a time; ``500 WorkerDied``), every other request is
   200, ``/ping`` (polled from a thread every 20 ms) is 200 throughout, the worker is replaced.
3. **SIGTERM under load**: a marked request sleeps in each worker, then ``serve`` gets
   SIGTERM. Targets: the requests in flight finish 200, new ones are refused cleanly
   (connection refused, closed, or 503; no other 5xx) and nothing hangs, ``serve`` exits 0
   within ``SAGEDOCK_GRACEFUL_TIMEOUT`` (``--grace``, serving/settings.py) and leaves no
   process behind.

It prints a report and a PASS/FAIL line per check; the exit status is 1 if any check failed.
``--inject`` plants leaks or wrong answers in the model, to see the soak's checks fail.

    .venv/bin/python bench/soak.py                 # 10 minutes of soak, then the faults
    .venv/bin/python bench/soak.py --quick         # smoke run: 20 s of soak
    .venv/bin/python bench/soak.py --quick --inject memory,files,sockets,body   # must FAIL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import busy_seconds  # noqa: E402

WORKERS = 2
FEATURES = 8
START_TIMEOUT = 60.0
#: A request that takes longer than this is a hang.
HANG_S = 15.0
RSS_TARGET = 0.05
#: Descriptors other than sockets (files, pipes, eventfds) a process may hold more at the end
#: than at the start.
FD_SLACK = 0

#: The faults --inject can plant in the model, to see the soak's checks fail.
INJECTABLE = ("memory", "files", "sockets", "body")

MODEL = """
    import os
    import socket
    import time
    from pathlib import Path

    import numpy as np

    MARKS = Path(os.environ["SOAK_MARKS"])
    INJECT = set(filter(None, os.environ.get("SOAK_INJECT", "").split(",")))
    LEAKED = []
    calls = 0


    def model_fn(model_dir):
        return np.arange(1.0, 9.0)


    def predict_fn(data, model):
        global calls
        if isinstance(data, dict):  # {"mark": name, "sleep": s}: the fault phases' requests
            (MARKS / f"{data['mark']}.{os.getpid()}").touch()
            time.sleep(float(data["sleep"]))
            return {"pid": os.getpid()}
        rows = np.asarray(data, dtype=float).reshape(-1, model.size)
        out = (rows @ model).tolist()
        calls += 1
        if "memory" in INJECT:
            LEAKED.append(bytearray(2048))
        if calls % 500 == 0:
            if "files" in INJECT:
                LEAKED.append(open(os.devnull))
            if "sockets" in INJECT:
                kept, other = socket.socketpair()
                other.close()
                LEAKED.append(kept)
            if "body" in INJECT:
                out[0] += 1
        return out
"""


# -- raw HTTP/1.1 client -----------------------------------------------------------------------


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post(body: bytes, content_type: str, accept: str = "application/json") -> bytes:
    return request_bytes(
        "POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept}
    )


ROW = [round(0.5 * i - 1.0, 3) for i in range(FEATURES)]
#: What the model answers for each of the 4 rows of a valid request (``rows @ [1 .. 8]``).
PREDICTION = sum(x * (i + 1) for i, x in enumerate(ROW))


def valid_requests() -> dict[str, bytes]:
    json_body = json.dumps([ROW] * 4).encode()
    csv_body = ("\n".join(",".join(map(str, ROW)) for _ in range(4)) + "\n").encode()
    return {
        "json": post(json_body, "application/json"),
        "csv": post(csv_body, "text/csv", "text/csv"),
    }


#: The status each invalid request must be refused with (nginx's or a worker's JSON error).
INVALID_STATUS = {
    "bad_json": "400",  # the worker's decoder
    "wrong_content_type": "415",  # the worker's negotiation
    "oversized": "413",  # nginx, before the body reaches a worker
    "garbage_head": "400",  # nginx's parser, the rest too
    "bad_content_length": "400",
    "tls_bytes": "400",
    "long_uri": "414",
    "unknown_path": "404",
}


def invalid_requests(max_payload_mb: float) -> dict[str, bytes]:
    rng = random.Random(7)
    garbage = bytes(rng.randrange(33, 127) for _ in range(200))
    oversized = b"[" + b"1," * int(max_payload_mb * 1024 * 1024 / 2 + 512) + b"1]"
    return {
        "bad_json": post(b'{"a": [1, 2', "application/json"),
        "wrong_content_type": post(b"abc", "application/x-soak-unknown"),
        "oversized": post(oversized, "application/json"),
        "garbage_head": garbage + b"\r\n\r\n",
        "bad_content_length": b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1x\r\n\r\n[1]",
        "tls_bytes": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
        + bytes(range(32))
        + b"\r\n\r\n",
        "long_uri": request_bytes("GET", "/invocations?" + "a" * 9000),
        "unknown_path": request_bytes("GET", "/soak-nowhere"),
    }


@dataclass
class Answer:
    outcome: str  # "200", "503", ... or "refused", "closed", "reset", "timeout"
    body: bytes = b""
    written: float = 0.0  # monotonic time the request was written (0: never)
    done: float = 0.0


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, raw: bytes, timeout: float = HANG_S) -> Answer:
        answer = Answer("timeout")
        try:
            await asyncio.wait_for(self._exchange(raw, answer), timeout)
        except TimeoutError:
            answer.outcome = "timeout"
            self.close()
        except ConnectionRefusedError:
            answer.outcome = "refused"
            self.close()
        except (ConnectionResetError, BrokenPipeError):
            answer.outcome = "reset"
            self.close()
        except (asyncio.IncompleteReadError, EOFError):
            answer.outcome = "closed"
            self.close()
        except OSError as exc:
            answer.outcome = f"oserror:{exc.errno}"
            self.close()
        answer.done = time.monotonic()
        return answer

    async def _exchange(self, raw: bytes, answer: Answer) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        answer.written = time.monotonic()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
        if not match:
            answer.outcome = "bad_response"
            self.close()
            return
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers or "content-length" not in headers:
            answer.outcome = "bad_response"  # every answer here has a Content-Length
            self.close()
            return
        length = int(headers["content-length"])
        answer.body = await self.reader.readexactly(length)
        answer.outcome = match.group(1)
        if headers.get("connection", "").lower() == "close":
            self.close()


@dataclass
class Load:
    """Requests in a thread of its own (one event loop, *concurrency* connections)."""

    port: int
    concurrency: int
    valid: dict[str, bytes]
    invalid: dict[str, bytes]
    invalid_share: float = 0.0
    detail: bool = False  # keep every valid answer (the SIGTERM phase)
    #: The body each valid kind must come back with (:func:`reference_bodies`): a 200 with
    #: another body counts as ``200 wrong body``, not as a success.
    expected: dict[str, bytes] = field(default_factory=dict)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        self._thread.join(HANG_S + 10)
        self.stopped = time.monotonic()
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.concurrency)))

    async def _client(self, index: int) -> None:
        rng = random.Random(index)
        conn = Connection(self.port)
        valid = list(self.valid.items())
        invalid = list(self.invalid.items())
        while not self._stop.is_set():
            if invalid and rng.random() < self.invalid_share:
                kind, raw = rng.choice(invalid)
                category = "invalid"
            else:
                kind, raw = rng.choice(valid)
                category = "valid"
            sent = time.monotonic()
            answer = await conn.exchange(raw)
            wrong = self.expected and answer.body != self.expected.get(kind)
            if category == "valid" and answer.outcome == "200" and wrong:
                answer.outcome = "200 wrong body"
            self.counts[category, kind, answer.outcome] += 1
            if category == "valid":
                if answer.outcome == "200":
                    self.latencies.append(answer.done - sent)
                if self.detail:
                    self.answers.append(answer)
            if answer.outcome in ("refused", "reset", "closed"):
                await asyncio.sleep(0.01)  # no busy loop on a stopping server
        conn.close()

    def by_outcome(self, category: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for (cat, _, outcome), n in self.counts.items():
            if cat == category:
                out[outcome] += n
        return out


class PingPoller:
    """``GET /ping`` every *interval* s on a kept-alive connection, from a thread."""

    def __init__(self, port: int, interval: float = 0.02) -> None:
        self.port = port
        self.interval = interval
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PingPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/ping")
                response = conn.getresponse()
                response.read()
                self.outcomes[str(response.status)] += 1
            except (OSError, http.client.HTTPException) as exc:
                self.outcomes[type(exc).__name__] += 1
                conn.close()
            self._stop.wait(self.interval)
        conn.close()


def reference_bodies(port: int) -> dict[str, bytes]:
    """One answer per valid kind, checked against :data:`PREDICTION`: the bytes every later
    answer of that kind must equal (the same request always gets the same answer)."""

    async def ask() -> dict[str, bytes]:
        conn = Connection(port)
        bodies = {}
        for kind, raw in valid_requests().items():
            answer = await conn.exchange(raw)
            if answer.outcome != "200":
                raise SystemExit(f"{kind} request answered {answer.outcome}: {answer.body!r}")
            bodies[kind] = answer.body
        conn.close()
        return bodies

    bodies = asyncio.run(ask())
    parsed = {
        "json": list(flatten(json.loads(bodies["json"]))),
        "csv": [float(v) for v in bodies["csv"].decode().split()],
    }
    for kind, values in parsed.items():
        if len(values) != 4 or any(abs(v - PREDICTION) > 1e-9 for v in values):
            raise SystemExit(f"{kind} request answered {bodies[kind]!r}, not 4 x {PREDICTION}")
    return bodies


def flatten(value: object) -> list[float]:
    if isinstance(value, list):
        return [x for item in value for x in flatten(item)]
    assert isinstance(value, int | float), value
    return [float(value)]


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descriptors(pid: int) -> tuple[int, int]:
    """Open descriptors of *pid*: (not sockets, sockets)."""
    sockets = len(socket_inodes(pid))
    return len(list(Path(f"/proc/{pid}/fd").iterdir())) - sockets, sockets


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def dangling_sockets(pids: list[int]) -> dict[int, int]:
    """pid -> how many connected sockets it holds whose other end nobody in *pids* holds.

    The number of sockets an idle server holds is not fixed (nginx pools up to KEEPALIVE
    connections to the workers per nginx worker, filled by the load's last peak), so a count
    cannot tell a leak from a fuller pool; this can. Once the load generator has closed its
    connections and they have settled, every TCP socket of the tree is a listener, and every
    connected unix socket (nginx <-> a worker, nginx master <-> its workers) has its other end
    in another process of the tree: a socket whose peer has closed (``ss`` shows peer inode 0)
    or lies outside the tree is one somebody forgot to close.
    """
    held = {pid: socket_inodes(pid) for pid in pids}
    everyone = set().union(*held.values())
    peer: dict[int, int] = {}  # unix stream socket inode -> its peer's (0: closed), connected
    ss = subprocess.run(["ss", "-xaH"], capture_output=True, text=True, check=True).stdout
    for line in ss.splitlines():
        fields = line.split()  # netid state recv-q send-q local inode peer inode
        if fields[0] == "u_str" and fields[1] == "ESTAB":
            peer[int(fields[-3])] = int(fields[-1])
    out = {}
    for pid, inodes in held.items():
        dangling = sum(1 for ino in inodes if ino in peer and peer[ino] not in everyone)
        with contextlib.suppress(psutil.Error):
            tcp = psutil.Process(pid).net_connections("tcp")
            dangling += sum(1 for c in tcp if c.status != psutil.CONN_LISTEN)
        out[pid] = dangling
    return out


class Server:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.marks = work / "marks"
        self.marks.mkdir()
        model = work / "model"
        (model / "code").mkdir(parents=True)
        (model / "code" / "inference.py").write_text(textwrap.dedent(MODEL))
        self.port = free_port()
        self.log_path = work / "serve.log"
        self._log_read = 0  # bytes of the log ready_count has read
        self._readies = 0
        #: Every process of the tree seen so far: what kill() stops.
        self.seen: dict[int, psutil.Process] = {}
        env = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(work / "ml"),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(WORKERS),
            "SAGEMAKER_USE_NGINX": "true",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": f"{args.max_payload_mb:g}",
            "SAGEDOCK_GRACEFUL_TIMEOUT": f"{args.grace:g}",
            "SAGEDOCK_ACCESS_LOG": str(args.access_log).lower(),
            "SOAK_MARKS": str(self.marks),
            "SOAK_INJECT": ",".join(args.inject),
            "PYTHONUNBUFFERED": "1",
        }
        # The console script a user runs (``pip install sagedock`` puts it beside python).
        sagedock = Path(sys.executable).with_name("sagedock")
        command = [str(sagedock), "serve", "--model-dir", str(model)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def ready_count(self) -> int:
        """Workers that have logged "ready" so far (the log is read on from where the last call
        stopped: the access log makes it grow by hundreds of MB over the soak)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_read)
            chunk = log.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self._log_read += len(whole)
        self._readies += len(re.findall(rb"worker \d+ ready in", whole))
        return self._readies

    def log_lines(self, start: int, end: int) -> Iterator[str]:
        """The log's lines between byte offsets *start* and *end* (streamed: with the access
        log on, a 10-minute soak writes a few hundred MB)."""
        with open(self.log_path, "rb") as log:
            log.seek(start)
            while log.tell() < end and (line := log.readline()):
                yield line.decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def wait_ready(self, readies: int, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited with {self.proc.returncode}:\n{self.log}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/ping")
                response = conn.getresponse()
                server = response.getheader("Server", "")
                conn.close()
                if response.status == 200 and self.ready_count() >= readies:
                    if not server.startswith("nginx"):
                        raise SystemExit(f"/ping answered by {server!r}, not nginx")
                    return
            time.sleep(0.05)
        raise SystemExit(f"not ready within {timeout} s:\n{self.log}")

    def processes(self) -> dict[int, tuple[str, psutil.Process]]:
        """pid -> (role, process) of every live process of the tree, roles told by parentage
        (not by command lines, which gunicorn may retitle): ``serve``'s children are the nginx
        master and the model server (gunicorn) master; theirs are the nginx workers and the
        model server workers."""
        root = psutil.Process(self.proc.pid)
        out: dict[int, tuple[str, psutil.Process]] = {root.pid: ("serve", root)}
        with contextlib.suppress(psutil.Error):
            for child in root.children():
                nginx = child.name().startswith("nginx")
                out[child.pid] = ("nginx master" if nginx else "server master", child)
                for grandchild in child.children():
                    role = "nginx worker" if nginx else "worker"
                    out[grandchild.pid] = (role, grandchild)
        for pid, (_, proc) in list(out.items()):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    continue
            del out[pid]  # a zombie (a killed worker not reaped yet) or gone
        self.seen.update((pid, proc) for pid, (_, proc) in out.items())
        return out

    def tree(self) -> dict[int, Sample]:
        """pid -> :class:`Sample` of every live process of the tree."""
        out: dict[int, Sample] = {}
        for pid, (role, proc) in self.processes().items():
            with contextlib.suppress(psutil.Error, OSError):
                files, sockets = descriptors(pid)
                cpu = proc.cpu_times()
                out[pid] = Sample(
                    role, proc.memory_info().rss, files, sockets, cpu.user + cpu.system
                )
        return out

    def workers(self) -> set[int]:
        return {pid for pid, (role, _) in self.processes().items() if role == "worker"}

    def kill(self) -> None:
        """SIGKILL every process of the tree: nginx and the model server run in process groups
        of their own, so killing ``serve``'s group alone would leave them to its death signal."""
        if self.proc.poll() is None:
            self.processes()
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):  # psutil refuses a reused pid
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def leftovers(self) -> list[str]:
        """The processes of the tree still alive (after ``serve`` exited)."""
        out = []
        for pid, proc in self.seen.items():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {proc.name()}")
        return out


@dataclass
class Sample:
    role: str
    rss: int  # bytes
    files: int  # descriptors other than sockets
    sockets: int
    cpu: float  # CPU seconds used so far (user + system)


# -- checks ------------------------------------------------------------------------------------


@dataclass
class Checks:
    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.items.append((name, passed, detail))

    def lines(self) -> list[str]:
        return [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in self.items]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.items)


def fmt_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def settle(seconds: float = 1.5) -> None:
    """Let the closed connections go away before a sample."""
    time.sleep(seconds)


def wait_for_mark(server: Server, mark: str, timeout: float = 10.0) -> int | None:
    """PID of the worker that started the marked request *mark* (None: none did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(server.marks.glob(f"{mark}.*"))
        if found:
            return int(found[0].suffix[1:])
        time.sleep(0.002)
    return None


class Marked:
    """One marked request ``{"mark": name, "sleep": s}`` in a thread of its own."""

    def __init__(self, port: int, mark: str, sleep: float) -> None:
        self.raw = post(json.dumps({"mark": mark, "sleep": sleep}).encode(), "application/json")
        self.port = port
        self.answer: Answer | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        async def go() -> Answer:
            conn = Connection(self.port)
            try:
                return await conn.exchange(self.raw, timeout=60)
            finally:
                conn.close()

        self.answer = asyncio.run(go())

    def result(self) -> Answer:
        self.thread.join(70)
        assert self.answer is not None
        return self.answer


# -- phases ------------------------------------------------------------------------------------


def own_cpu() -> float:
    """CPU seconds this process (the load generator, all its threads) has used."""
    cpu = psutil.Process().cpu_times()
    return float(cpu.user + cpu.system)


#: nginx error-log lines that an invalid request of the mix causes by design.
EXPECTED_NGINX_ERRORS = ("client intended to send too large body",)
PYTHON_ERROR = re.compile(r"\[(ERROR|CRITICAL)\] (.*)")
NGINX_ERROR = re.compile(r"\[(error|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?([^,]*)")
NUMBERS = re.compile(r"[0-9a-f]{16,}|\d+")  # request ids, pids, sizes


def log_summary(lines: Iterable[str]) -> tuple[Counter[str], list[str]]:
    """(count per kind of error line, the first unexpected ones) of server log *lines*: Python
    tracebacks and ERROR/CRITICAL lines, nginx's [error] and worse (its per-request details,
    numbers included, stripped so that lines of one kind count together)."""
    kinds: Counter[str] = Counter()
    unexpected: list[str] = []
    for line in lines:
        if line.startswith("Traceback"):
            kind = "Traceback"
        elif match := PYTHON_ERROR.search(line):
            kind = f"{match.group(1)} {NUMBERS.sub('N', match.group(2))[:90]}"
        elif match := NGINX_ERROR.search(line):
            kind = f"nginx {match.group(1)} {NUMBERS.sub('N', match.group(2))[:90]}"
        else:
            continue
        kinds[kind] += 1
        if not any(ok in kind for ok in EXPECTED_NGINX_ERRORS) and len(unexpected) < 5:
            unexpected.append(line.rstrip()[:300])
    return kinds, unexpected


def soak(server: Server, args: argparse.Namespace, checks: Checks, out: list[str]) -> None:
    valid, invalid = valid_requests(), invalid_requests(args.max_payload_mb)
    expected = reference_bodies(server.port)

    def new_load() -> Load:
        return Load(
            server.port, args.concurrency, valid, invalid, args.invalid_share, expected=expected
        )

    # The warm-up fills nginx's connection pools and the allocators' arenas, so that the
    # first sample is taken on a server as warm as the last: a growth between the two is
    # then a leak, not a first use.
    warm = new_load().start()
    time.sleep(args.warmup)
    warm.stop()
    settle()
    start = server.tree()  # idle: the load stopped and its connections closed
    log_start = server.log_size()
    load_avg = os.getloadavg()
    load = new_load().start()
    busy0, own0 = busy_seconds(), own_cpu()
    timeline: list[str] = []
    step = max(args.seconds / 10, 2.0)
    deadline = load.started + args.seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(step, left))
        tree = server.tree()
        workers = [p.rss for p in tree.values() if p.role == "worker"]
        timeline.append(
            f"  t={time.monotonic() - load.started:4.0f} s  worker RSS "
            + " ".join(f"{rss / 2**20:.1f}" for rss in workers)
            + f" MiB, tree {sum(p.rss for p in tree.values()) / 2**20:.1f} MiB, "
            f"{sum(p.files for p in tree.values())} files + "
            f"{sum(p.sockets for p in tree.values())} sockets"
        )
    load.stop()
    elapsed = load.stopped - load.started
    busy, own = (busy_seconds() - busy0) / elapsed, (own_cpu() - own0) / elapsed
    settle()
    end = server.tree()  # idle again, the same way
    dangling = dangling_sockets(list(end))
    log_kinds, unexpected_log = log_summary(server.log_lines(log_start, server.log_size()))
    served = sum(end[pid].cpu - start[pid].cpu for pid in start if pid in end) / elapsed

    valid_out, invalid_out = load.by_outcome("valid"), load.by_outcome("invalid")
    total = sum(valid_out.values()) + sum(invalid_out.values())
    lat = sorted(load.latencies)
    out.append(
        f"== soak: {elapsed:.0f} s at c={args.concurrency}, {args.invalid_share:.0%} invalid =="
    )
    out.append(
        f"throughput: {total / elapsed:.0f} req/s ({sum(valid_out.values()) / elapsed:.0f} "
        f"valid), {total} requests"
    )
    out.append(
        f"machine: {busy:.2f} of {os.cpu_count()} cores busy - the server {served:.2f}, the "
        f"load generator {own:.2f}, other users {max(0.0, busy - served - own):.2f}; load "
        f"average {load_avg[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    if lat:
        out.append(
            f"valid 200 latency: p50 {statistics.median(lat) * 1e3:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms"
        )
    out.append(f"valid by status: {fmt_counts(valid_out)}")
    out.append("invalid by kind and status (expected):")
    wrong_invalid = 0
    for kind in sorted(invalid):
        per = Counter(
            {o: n for (c, k, o), n in load.counts.items() if c == "invalid" and k == kind}
        )
        # nginx may close the connection of a refused request (and reset it while the
        # client still writes the oversized body): clean refusals too.
        allowed = {INVALID_STATUS[kind], "closed", "reset"}
        wrong_invalid += sum(n for o, n in per.items() if o not in allowed)
        out.append(f"  {kind:20s} {fmt_counts(per)} ({INVALID_STATUS[kind]})")
    out.append("server log during the soak, error lines by kind:")
    out += [f"  {n:7d}  {kind}" for kind, n in log_kinds.most_common()] or ["  none"]
    out.append("RSS timeline under load:")
    out += timeline
    out.append("processes (sampled idle after the warm-up and at the end):")
    out.append(
        f"  {'pid':>7} {'role':14} {'RSS start':>10} {'RSS end':>10} {'change':>8} "
        f"{'files start/end':>15} {'sockets start/end':>17} {'dangling':>8}"
    )
    worst_rss, worst_fd = 0.0, 0
    for pid, s0 in sorted(start.items(), key=lambda kv: kv[1].role):
        if pid not in end:
            out.append(f"  {pid:>7} {s0.role:14} {s0.rss / 2**20:9.1f}M {'gone':>10}")
            continue
        s1 = end[pid]
        change = (s1.rss - s0.rss) / s0.rss
        worst_rss = max(worst_rss, abs(change))
        worst_fd = max(worst_fd, s1.files - s0.files)
        out.append(
            f"  {pid:>7} {s0.role:14} {s0.rss / 2**20:9.1f}M {s1.rss / 2**20:9.1f}M "
            f"{change:+8.1%} {f'{s0.files}/{s1.files}':>15} "
            f"{f'{s0.sockets}/{s1.sockets}':>17} {dangling.get(pid, 0):>8}"
        )
    bad_valid = sum(n for o, n in valid_out.items() if o != "200")
    fivexx = sum(n for o, n in valid_out.items() if o.startswith("5"))
    checks.add(
        "soak: every valid request 200 with the right body",
        bad_valid == 0 and sum(valid_out.values()) > 0,
        f"{bad_valid} not (200, right body) - {fivexx} 5xx - of {sum(valid_out.values())}",
    )
    checks.add(
        "soak: every invalid request refused with its 4xx (or closed), none 5xx or hanging",
        wrong_invalid == 0 and sum(invalid_out.values()) > 0,
        f"{wrong_invalid} otherwise of {sum(invalid_out.values())}",
    )
    checks.add(
        "soak: no process of the tree replaced",
        set(start) == set(end),
        f"{len(start)} processes at the start, {len(set(start) & set(end))} of them at the end",
    )
    checks.add(
        f"soak: RSS of every process flat within {RSS_TARGET:.0%}",
        worst_rss <= RSS_TARGET,
        f"largest change {worst_rss:.1%}",
    )
    checks.add(
        "soak: no descriptor leaked",
        worst_fd <= FD_SLACK and not any(dangling.values()),
        f"largest growth of files/pipes {worst_fd:+d} (allowed {FD_SLACK}); "
        f"{sum(dangling.values())} sockets left connected to nobody (or non-listening TCP)",
    )
    checks.add(
        "soak: no traceback or unexpected error in the server log",
        not unexpected_log,
        "; ".join(unexpected_log) or f"only {', '.join(EXPECTED_NGINX_ERRORS)!r} lines",
    )


def fault(server: Server, args: argparse.Namespace, checks: Checks, out: list[str]) -> None:
    out.append(f"== kill -9 a worker mid-request, {args.kills} times, under load ==")
    readies = server.ready_count()
    marked_answers: list[Answer] = []
    replaced: list[float] = []
    victims: list[int] = []
    with PingPoller(server.port) as ping:
        load = Load(server.port, args.concurrency, valid_requests(), {}).start()
        time.sleep(1.0)
        for k in range(args.kills):
            before = server.workers()
            marked = Marked(server.port, f"fault-{k}", sleep=2.0)
            victim = wait_for_mark(server, f"fault-{k}")
            if victim is None:
                out.append(f"kill {k}: the marked request never reached a worker")
                marked_answers.append(marked.result())
                continue
            victims.append(victim)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            marked_answers.append(marked.result())
            readies += 1
            deadline = killed + 30
            while time.monotonic() < deadline and server.ready_count() < readies:
                time.sleep(0.01)
            after = server.workers()
            if server.ready_count() >= readies and victim not in after and len(after) == WORKERS:
                replaced.append(time.monotonic() - killed)
            out.append(
                f"kill {k}: worker {victim} (of {sorted(before)}) -> "
                f"{marked_answers[-1].outcome} "
                f"{marked_answers[-1].body[:120].decode(errors='replace')}; workers now "
                f"{sorted(after)}"
            )
            time.sleep(1.0)
        time.sleep(1.0)
        load.stop()
    valid_out = load.by_outcome("valid")
    out.append(f"load by status: {fmt_counts(valid_out)}")
    out.append(f"/ping by status: {fmt_counts(ping.outcomes)}")
    died = [
        a
        for a in marked_answers
        if a.outcome == "500" and json.loads(a.body or b"{}").get("type") == "WorkerDied"
    ]
    failed_load = sum(n for o, n in valid_out.items() if o != "200")
    checks.add(
        "kill -9: exactly the killed worker's in-flight request fails",
        len(died) == args.kills == len(victims) and failed_load == 0,
        f"{len(died)} of {args.kills} marked requests 500 WorkerDied, "
        f"{failed_load} of {sum(valid_out.values())} other requests failed",
    )
    bad_ping = sum(n for o, n in ping.outcomes.items() if o != "200")
    checks.add(
        "kill -9: /ping 200 throughout",
        bad_ping == 0 and ping.outcomes["200"] > 0,
        f"{bad_ping} of {sum(ping.outcomes.values())} polls not 200",
    )
    checks.add(
        "kill -9: the worker is replaced",
        len(replaced) == args.kills,
        f"{len(replaced)} of {args.kills} replaced, ready again in "
        + ", ".join(f"{s:.2f}" for s in replaced)
        + " s",
    )


#: A request written this shortly before SIGTERM may still be unread in its kept-alive
#: connection when nginx's workers get SIGQUIT, and nginx closes such a connection as idle
#: without answering: the client sees it closed, as it may see any idle kept-alive connection
#: closed. Such requests are counted apart; older ones must all be answered 200.
UNREAD_S = 0.1


def sigterm(server: Server, args: argparse.Namespace, checks: Checks, out: list[str]) -> None:
    out.append(f"== SIGTERM under load (graceful timeout {args.grace:g} s) ==")
    load = Load(server.port, args.concurrency, valid_requests(), {}, detail=True).start()
    time.sleep(1.0)
    # One long request per worker, running when the signal comes and still running well
    # after it. Sent one after the other: sent together, least_conn may give both to one
    # worker, the second waiting behind the first; once the first sleeps in a worker, that
    # worker has more requests in flight than the other, which gets the next one.
    marked: list[Marked] = []
    running: list[int | None] = []
    for k in range(WORKERS):
        marked.append(Marked(server.port, f"term-{k}", sleep=3.0))
        running.append(wait_for_mark(server, f"term-{k}", timeout=2.0))
    probes: list[Answer] = []
    stop_probing = threading.Event()

    def probe() -> None:  # a fresh connection every 20 ms
        async def go() -> None:
            while not stop_probing.is_set():
                conn = Connection(server.port)
                raw = valid_requests()["json"]
                probes.append(await conn.exchange(raw, timeout=HANG_S))
                conn.close()
                await asyncio.sleep(0.02)

        asyncio.run(go())

    server.processes()  # every process now in the tree is in server.seen: none may outlive serve
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        code: int | None = server.proc.wait(args.grace + 10)
    except subprocess.TimeoutExpired:
        code = None
    exited = time.monotonic() - t0
    time.sleep(0.5)
    stop_probing.set()
    prober.join(HANG_S + 5)
    load.stop()
    marked_out = [m.result() for m in marked]
    leftovers = server.leftovers()

    def written_before(a: Answer, seconds: float) -> bool:
        return 0 < a.written < t0 - seconds

    in_flight = Counter(a.outcome for a in load.answers if written_before(a, UNREAD_S))
    unread = Counter(
        a.outcome for a in load.answers if written_before(a, 0) and not written_before(a, UNREAD_S)
    )
    after = Counter(a.outcome for a in load.answers if not written_before(a, 0))
    probe_out = Counter(a.outcome for a in probes)
    out.append(
        f"marked requests running in workers {running} at SIGTERM: "
        + ", ".join(f"{a.outcome} {a.done - t0:.2f} s after it" for a in marked_out)
    )
    out.append(
        f"load, written over {UNREAD_S * 1e3:.0f} ms before SIGTERM: {fmt_counts(in_flight)}"
    )
    out.append(f"load, written in the {UNREAD_S * 1e3:.0f} ms before: {fmt_counts(unread)}")
    out.append(f"load, written after SIGTERM (or never): {fmt_counts(after)}")
    out.append(f"new connections after SIGTERM: {fmt_counts(probe_out)}")
    out.append(
        f"serve exited with {code} after {exited:.2f} s; left running: {leftovers or 'none'}"
    )
    marked_ok = (
        None not in running
        and len(set(running)) == WORKERS
        and all(a.outcome == "200" and a.done > t0 for a in marked_out)
    )
    checks.add(
        "SIGTERM: requests in flight finish 200",
        marked_ok and set(in_flight) == {"200"},
        "marked (one per worker, answered after the signal): "
        + ", ".join(
            f"{a.outcome} in {pid} {a.done - t0:+.2f} s"
            for a, pid in zip(marked_out, running, strict=True)
        )
        + "; other requests written before it: "
        f"{fmt_counts(in_flight)}",
    )
    clean = {"200", "503", "refused", "reset", "closed"}
    unclean = {o: n for o, n in (after + probe_out + unread).items() if o not in clean}
    checks.add(
        "SIGTERM: new requests refused cleanly (refused/closed/503), none hangs",
        not unclean and probe_out["refused"] > 0,
        f"other outcomes: {unclean or 'none'}; new connections {fmt_counts(probe_out)}",
    )
    checks.add(
        "SIGTERM: serve exits 0 within the graceful timeout, leaving no process behind",
        code == 0 and exited <= args.grace and not leftovers,
        f"exit {code} after {exited:.2f} s (SAGEDOCK_GRACEFUL_TIMEOUT={args.grace:g}); "
        f"left running: {leftovers or 'none'}",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="soak duration")
    parser.add_argument("--concurrency", type=int, default=64, help="connections")
    parser.add_argument("--warmup", type=float, default=15, help="seconds before the first sample")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 s soak, 3 s warm-up")
    parser.add_argument(
        "--invalid-share", type=float, default=0.2, help="share of invalid requests in the soak"
    )
    parser.add_argument("--kills", type=int, default=3, help="workers killed in phase 2")
    parser.add_argument(
        "--grace", type=float, default=10, help="SAGEDOCK_GRACEFUL_TIMEOUT for the server"
    )
    parser.add_argument(
        "--max-payload-mb",
        type=float,
        default=1,
        help="SAGEMAKER_MAX_PAYLOAD_IN_MB (the oversized request is this + 1 KiB)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SAGEDOCK_ACCESS_LOG (on, as by default: one line per request in the server log)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    parser.add_argument(
        "--inject",
        type=lambda v: [f for f in v.split(",") if f],
        default=[],
        help="make the soak's checks fail on purpose, to see that they can: a comma-separated "
        f"list of faults the model then has ({', '.join(INJECTABLE)}: 2 KiB kept per "
        "prediction; a file, or one end of a socket pair, left open every 500; one wrong "
        "answer in 500)",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.inject) - set(INJECTABLE):
        parser.error(f"--inject: unknown {', '.join(sorted(unknown))}")
    if args.quick:
        args.seconds, args.warmup = 20.0, 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sagedock-soak-"))
    checks = Checks()
    if shutil.which("ss") is None:
        raise SystemExit("bench/soak.py needs ss (iproute2) to audit the server's sockets")
    out: list[str] = [
        f"bench/soak.py {' '.join(sys.argv[1:]) or '(defaults)'}: "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{WORKERS} workers behind nginx, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.2f}), python {sys.version.split()[0]}, temp dir {work}"
    ]
    server = Server(work, args)
    try:
        server.wait_ready(WORKERS)
        for phase in (soak, fault, sigterm):
            phase(server, args, checks, out)
            print("\n".join(out), flush=True)
            out.clear()
    finally:
        print("\n".join(out), flush=True)  # what a phase that failed had to say
        server.kill()
    print("== checks ==")
    print("\n".join(checks.lines()))
    print("RESULT:", "PASS" if checks.passed else "FAIL")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"server log: {server.log_path}")
    return 0 if checks.passed else 1


if __name__ == "__main__":
    sys.exit(main())
