"""The system under test of the chaos run: a store of its own and three ``leadbot`` processes.

:func:`scratch_role` makes a Postgres role and a schema of the same name: the role's default
``search_path`` (``"$user", public``) then finds the run's tables first, so the processes
need nothing but a database URL naming that role (a URL cannot carry a ``search_path`` for
asyncpg). Both are dropped afterwards.

:class:`Cluster` runs two ``leadbot serve --no-scheduler`` workers and one ``leadbot
scheduler`` as subprocesses of this venv's ``leadbot``, configured only through ``LEADBOT_*``
environment variables (nothing inherited, a working directory of their own so no ``.env``
is read), each logging to a file. It kills one with SIGKILL and restarts it, and kills all
of them on the way out (also when the parent dies: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dialogs.yaml_source import load_yaml
from scheduler.store.engine import create_engine

ROOT = Path(__file__).resolve().parent.parent
LEADBOT = Path(sys.executable).with_name("leadbot")
# The venv's console script; without one (a bare interpreter), the CLI module from the tree.
COMMAND = [str(LEADBOT)] if LEADBOT.exists() else [sys.executable, "-m", "bot.cli.main"]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Keys of the cadence file whose values are durations (whatever item 6 adds, by its name).
_DURATION_KEY = re.compile(r"offset|after|_for$|delay|wait|every|timeout|within")


@asynccontextmanager
async def scratch_role(url: str, *, prefix: str = "chaos") -> AsyncIterator[str]:
    """A Postgres role and a schema of the same name; yields the URL that logs in as it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, pool_size=1)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
            await connection.execute(text(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"'))
        yield make_url(url).set(username=name).render_as_string(hide_password=False)
    finally:
        async with admin.begin() as connection:
            # Sessions of killed processes may linger a moment: end them first.
            await connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n"),
                {"n": name},
            )
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            await connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        await admin.dispose()


LOG_PATTERNS = {
    "errors": " ERROR ",
    "tracebacks": "Traceback (most recent call last)",
    "deadlocks": "deadlock detected",
    "lock timeouts": "could not acquire the lock",
    "redis pool exhausted": "MaxConnectionsError",
    "gave up": "gave up on",
}


def compress_cadence(
    source: Path, target_dir: Path, *, day_seconds: float, min_seconds: int
) -> Path:
    """A copy of the cadence file (and its templates) with days turned into seconds.

    Every duration becomes ``max(min_seconds, D × day_seconds / 1 day)`` whole seconds
    (``0`` stays ``0``), offsets still increasing step to step; quiet hours and business
    days are switched off, so steps fall due during the run whatever the day.
    """
    data = load_yaml(source).data

    def scale(value: Any) -> Any:
        match = _DURATION.match(str(value))
        if match is None or isinstance(value, bool):
            return value
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
        if seconds == 0:
            return 0
        return f"{max(min_seconds, round(seconds * day_seconds / 86400))}s"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if isinstance(value, dict | list):
                    out[key] = walk(value)
                elif _DURATION_KEY.search(str(key)) or (
                    isinstance(value, str) and _DURATION.match(value) and value[-1].isalpha()
                ):
                    out[key] = scale(value)
                else:
                    out[key] = value
            if isinstance(out.get("steps"), list):
                previous = -1
                for step in out["steps"]:
                    if isinstance(step, dict) and "offset" in step:
                        seconds = int(str(step["offset"]).rstrip("s"))
                        seconds = max(seconds, previous + 1)
                        step["offset"] = f"{seconds}s" if seconds else 0
                        previous = seconds
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    compressed = walk(data)
    for key in ("quiet_hours", "business_days"):
        if isinstance(compressed.get(key), dict):
            compressed[key]["enabled"] = False
    compressed["version"] = f"{compressed.get('version', 'cadence')}-chaos"
    target_dir.mkdir(parents=True, exist_ok=True)
    templates = source.parent / "templates"
    if templates.is_dir():
        shutil.copytree(templates, target_dir / "templates", dirs_exist_ok=True)
    target = target_dir / source.name
    target.write_text(yaml.safe_dump(compressed, sort_keys=False, allow_unicode=True))
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


try:  # loaded here, not in the child: dlopen between fork and exec could deadlock
    _LIBC: Any = ctypes.CDLL(None)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the harness dies


@dataclass
class Proc:
    """One ``leadbot`` process of the cluster (restarted under the same name and port)."""

    name: str
    args: list[str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: list[float] = field(default_factory=list)  # perf_counter of each SIGKILL

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None


class Cluster:
    """Two web workers and a scheduler on one store (see the module docstring)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        ports = [free_port(), free_port()]
        self.procs = [
            Proc(
                f"serve-{i + 1}",
                ["serve", "--no-scheduler", "--port", str(port)],
                workdir / f"serve-{i + 1}.log",
                port=port,
            )
            for i, port in enumerate(ports)
        ]
        self.procs.append(Proc("scheduler", ["scheduler"], workdir / "scheduler.log"))

    @property
    def serves(self) -> list[Proc]:
        """The web workers."""
        return [p for p in self.procs if p.port is not None]

    def url(self, proc: Proc, path: str) -> str:
        """``http://127.0.0.1:<port><path>`` of a web worker."""
        return f"http://127.0.0.1:{proc.port}{path}"

    def start(self, proc: Proc) -> None:
        """Start (or restart) ``proc``; its output goes to its log file."""
        proc.starts += 1
        with proc.log.open("ab") as log:
            log.write(f"\n===== start #{proc.starts} at {time.time():.3f} =====\n".encode())
            log.flush()
            proc.popen = subprocess.Popen(  # noqa: S603 - our own venv's entry point
                [*COMMAND, *proc.args],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the harness only; it kills us
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )

    async def start_all(self, timeout: float = 60.0) -> None:
        """Start every process and wait until the web workers answer ``/healthz``."""
        for proc in self.procs:
            self.start(proc)
        await self.wait_healthy(self.serves, timeout)

    async def wait_healthy(self, procs: list[Proc], timeout: float) -> None:
        """Wait until each web worker in ``procs`` answers ``/healthz`` with 200."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            for proc in procs:
                while True:
                    if not proc.alive:
                        raise RuntimeError(f"{proc.name} exited; see {proc.log}")
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with http.get(self.url(proc, "/healthz")) as response:
                            if response.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{proc.name} not healthy after {timeout:.0f}s")
                    await asyncio.sleep(0.2)

    def kill(self, proc: Proc) -> None:
        """SIGKILL ``proc`` (no shutdown of any kind) and reap it."""
        if proc.popen is not None and proc.popen.poll() is None:
            proc.kills.append(time.perf_counter())
            proc.popen.kill()
            proc.popen.wait()

    def stop_all(self) -> None:
        """Kill every process that still runs (used on the way out, whatever happened)."""
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=10)

    def exits(self) -> dict[str, int | None]:
        """Exit codes of processes that stopped on their own (not killed by us)."""
        return {
            p.name: p.popen.returncode
            for p in self.procs
            if p.popen is not None and p.popen.poll() is not None
        }

    def log_counts(self) -> dict[str, dict[str, int]]:
        """Per process log: ERROR lines, tracebacks, and the symptoms issue 12 names."""
        counts: dict[str, dict[str, int]] = {}
        for proc in self.procs:
            content = proc.log.read_text(errors="replace") if proc.log.exists() else ""
            counts[proc.name] = {
                name: content.count(pattern) for name, pattern in LOG_PATTERNS.items()
            }
        return counts


def child_env(values: dict[str, str]) -> dict[str, str]:
    """The children's environment: ``values`` plus only what a process needs to run (no
    inherited ``LEADBOT_*`` nor proxies: every connection stays on 127.0.0.1)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {"NO_PROXY": "*", "no_proxy": "*", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    )
    env.update(values)
    return env
