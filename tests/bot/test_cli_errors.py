"""Known failures of every ``leadbot`` command: one line on stderr that says what is wrong and
what to do, exit code 2, no traceback — run as an operator runs them (issue 13, item 3)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli.main import app
from scheduler.store.engine import create_engine
from tests.conftest import POSTGRES_URL, _postgres_problem, _unavailable

runner = CliRunner()
BROKEN_YAML = "version: 1\nsequences: [\n"  # unclosed: PyYAML stops at line 3


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean working directory and no LEADBOT_* variable of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("LEADBOT_", "OPENAI_")) and not name.startswith("LEADBOT_TEST_"):
            monkeypatch.delenv(name)
    return {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}


def one_error_line(result: object) -> str:
    """The single line a failed command printed on stderr (and nothing on stdout)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    return str(line)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def files_in(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


# --- the database ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["leads", "list"],
        ["reps", "list"],
        ["db", "upgrade"],
        ["leads", "erase", "1"],
        ["leads", "import", "leads.csv"],
        ["reps", "add", "Ana", "--email", "ana@acme.com"],
    ],
)
def test_a_wrong_postgres_port_is_one_line(
    env: dict[str, str], command: list[str], tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text("name,email\nDana,dana@example.com\n", encoding="utf-8")
    port = free_port()
    env = {
        "LEADBOT_DATABASE_URL": f"postgresql+asyncpg://leadbot:s3cret@127.0.0.1:{port}/leadbot",
        "LEADBOT_SECRET_KEY": "k",
        "LEADBOT_API_TOKEN": "t",
    }
    line = one_error_line(runner.invoke(app, command, env=env))
    assert line.startswith(f"nothing answers at 127.0.0.1:{port} (connection refused)")
    assert "LEADBOT_DATABASE_URL" in line
    assert "s3cret" not in line  # the password is never shown


@pytest.fixture
def postgres_server() -> str:
    """The test Postgres server's URL (skipped, or failed under CI, when unreachable)."""
    problem = asyncio.run(_postgres_problem())
    if problem:
        _unavailable("PostgreSQL", problem)
    return POSTGRES_URL


def _with(url: str, **parts: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(**parts).render_as_string(hide_password=False)  # type: ignore[arg-type]


def test_an_unknown_role_is_one_line(env: dict[str, str], postgres_server: str) -> None:
    url = _with(postgres_server, username="no_such_role_13")
    result = runner.invoke(app, ["leads", "list"], env={"LEADBOT_DATABASE_URL": url})
    line = one_error_line(result)
    assert "refused the login" in line and "no_such_role_13" in line
    assert "LEADBOT_DATABASE_URL" in line


def test_an_unknown_database_is_one_line(env: dict[str, str], postgres_server: str) -> None:
    url = _with(postgres_server, database="no_such_db_13")
    line = one_error_line(runner.invoke(app, ["db", "upgrade"], env={"LEADBOT_DATABASE_URL": url}))
    assert line.startswith('database "no_such_db_13" does not exist on the PostgreSQL server')
    assert "createdb" in line


@pytest.fixture
def unmigrated_postgres(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards)."""
    name = f"lb_unmigrated_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        engine = create_engine(postgres_server, pool_size=1)
        try:
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with(postgres_server, database=name)
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.parametrize(
    "command",
    [
        ["leads", "list"],
        ["leads", "erase", "1"],
        ["reps", "add", "Ana", "--email", "a@x.io"],
        ["reps", "list"],
        ["scheduler"],
        ["serve", "--port", "0"],
    ],
)
def test_an_unmigrated_postgres_names_the_command_to_run(
    env: dict[str, str], unmigrated_postgres: str, command: list[str], tmp_path: Path
) -> None:
    settings = {
        "LEADBOT_DATABASE_URL": unmigrated_postgres,
        "LEADBOT_SECRET_KEY": "k",
        "LEADBOT_API_TOKEN": "t",
    }
    # CliRunner: `serve` and `scheduler` would run on, in the test, if the check let them.
    result = runner.invoke(app, command, env=settings)
    if command[0] in ("serve", "scheduler"):  # they configure logging: keep the last line
        assert result.exit_code == 2 and "Traceback" not in result.output
        line = result.stderr.strip().splitlines()[-1]
    else:
        line = one_error_line(result)
    assert line.endswith("has no leadbot schema: run `leadbot db upgrade`"), line
    assert files_in(tmp_path) == set()


def test_an_unmigrated_sqlite_file_names_the_command_to_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "cli.db").touch()
    line = one_error_line(runner.invoke(app, ["leads", "list"], env=env))
    assert (
        line == f"the database {tmp_path}/cli.db has no leadbot schema: run `leadbot db upgrade`"
    )


def test_reading_a_missing_sqlite_file_does_not_create_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    line = one_error_line(runner.invoke(app, ["reps", "list"], env=env))
    assert line.startswith(f"there is no database at {tmp_path}/cli.db: run `leadbot db upgrade`")
    assert not (tmp_path / "cli.db").exists()
    # A command that writes creates the embedded database, as before.
    added = runner.invoke(app, ["reps", "add", "Ana", "--email", "ana@acme.com"], env=env)
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["reps", "list"], env=env).exit_code == 0


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("LEADBOT_DEFAULT_TIMEZONE", "Mars/Olympus_Mons"), ("LEADBOT_DEFAULT_REGION", "XX")],
)
def test_an_invalid_time_zone_or_region_is_refused(
    env: dict[str, str], name: str, value: str
) -> None:
    line = one_error_line(runner.invoke(app, ["leads", "list"], env={**env, name: value}))
    assert line.startswith(f"invalid configuration: {name}: '{value}' is not a")


def test_several_bad_variables_are_still_one_line(env: dict[str, str]) -> None:
    bad = {"LEADBOT_PORT": "eighty", "LEADBOT_DEFAULT_TIMEZONE": "Nowhere"}
    line = one_error_line(runner.invoke(app, ["db", "upgrade"], env={**env, **bad}))
    assert "LEADBOT_PORT:" in line and "LEADBOT_DEFAULT_TIMEZONE:" in line


@pytest.mark.parametrize("command", [["serve"], ["scheduler"]])
def test_smtp_without_a_sender_is_refused_before_anything_starts(
    env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    result = runner.invoke(app, command, env={**env, "LEADBOT_SMTP_URL": "smtp://127.0.0.1:1"})
    line = one_error_line(result)
    assert line.startswith("LEADBOT_SMTP_URL is set but LEADBOT_EMAIL_FROM is empty")
    assert files_in(tmp_path) == set()  # no database, no secrets file


def test_the_warning_is_printed_once_per_command(env: dict[str, str]) -> None:
    command = ["reps", "add", "Ana", "--email", "ana@acme.com"]
    result = runner.invoke(app, command, env={**env, "LEADBOT_SMTP_ULR": "smtp://h"})
    assert result.exit_code == 0, result.output
    assert result.stderr.count("LEADBOT_SMTP_ULR") == 1


def test_a_misspelt_variable_gets_a_did_you_mean(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LEADBOT_PUBLIC_ULR=https://x.example\n", encoding="utf-8")
    result = runner.invoke(
        app, ["db", "upgrade"], env={**env, "LEADBOT_SMTP_ULR": "smtp://h", "LEADBOT_PROT": "1"}
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: LEADBOT_PROT (environment) is not a leadbot setting: did you mean LEADBOT_PORT?",
        "warning: LEADBOT_SMTP_ULR (environment) is not a leadbot setting: did you mean "
        "LEADBOT_SMTP_URL?",
        "warning: LEADBOT_PUBLIC_ULR (.env) is not a leadbot setting: did you mean "
        "LEADBOT_PUBLIC_URL?",
    ]


# --- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["cadence", "icp", "dialogs"])
@pytest.mark.parametrize("command", [["serve"], ["scheduler"]])
def test_a_broken_file_is_its_file_line_and_reason(
    env: dict[str, str], tmp_path: Path, setting: str, command: list[str]
) -> None:
    broken = tmp_path / "in" / "broken.yaml"
    broken.parent.mkdir()
    broken.write_text(BROKEN_YAML, encoding="utf-8")
    variable = {
        "cadence": ("LEADBOT_CADENCE_FILE", broken),
        "icp": ("LEADBOT_ICP_FILE", broken),
        "dialogs": ("LEADBOT_DIALOGS_DIR", broken.parent),
    }[setting]
    result = runner.invoke(app, command, env={**env, variable[0]: str(variable[1])})
    line = one_error_line(result)
    assert line.startswith(f"{broken}:3: invalid YAML: "), line
    assert files_in(tmp_path) == {"in"}  # refused before the database or secrets were made


def test_chat_with_a_broken_icp_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    icp = tmp_path / "icp.yaml"
    icp.write_text('version: "1"\nslots: {}\nhot: 70\nwarm: 40\ntiers: {}\n', encoding="utf-8")
    line = one_error_line(runner.invoke(app, ["chat"], env={**env, "LEADBOT_ICP_FILE": str(icp)}))
    assert line.startswith(f"{icp}:"), line


def test_several_problems_show_the_first_and_the_check_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    cadence = tmp_path / "cadence.yaml"
    cadence.write_text("version: 1\nsequences: {}\nbogus: 1\nother: 2\n", encoding="utf-8")
    result = runner.invoke(app, ["serve"], env={**env, "LEADBOT_CADENCE_FILE": str(cadence)})
    line = one_error_line(result)
    assert line.startswith(f"{cadence}:")
    assert "more problem(s): `leadbot cadence check` lists them)" in line


# --- the port -------------------------------------------------------------------------------


def serve_process(cwd: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`leadbot serve` in a process of its own, as an operator starts it (it must not start:
    each caller makes it fail)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEADBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", *args],
        cwd=cwd,
        env={**environment, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_port_in_use_is_refused_before_any_job_runs(tmp_path: Path) -> None:
    """A second `serve` on a taken port: one line, and nothing started — no database, no
    secrets file, no migration, no job (they all need the database)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_process(tmp_path, LEADBOT_PORT=str(port))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"port {port} on 127.0.0.1 is already in use (another leadbot serve?): stop that "
        "process or choose another with --port or LEADBOT_PORT"
    ]
    assert files_in(tmp_path) == set()


def test_an_address_of_another_machine_is_refused(tmp_path: Path) -> None:
    done = serve_process(tmp_path, "--host", "192.0.2.1", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("192.0.2.1 is not an address of this machine: set --host")


# --- a server that is not running -----------------------------------------------------------


def test_sandbox_chat_without_a_server_says_to_start_one(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["sandbox", "chat", "--url", url, "--token", "t"], input="hi\n")
    line = one_error_line(result)
    assert line == (
        f"no leadbot server answers at {url} (connection refused): start one with "
        "`leadbot serve`, or pass its address with --url"
    )


def test_sandbox_chat_checks_the_server_before_making_secrets(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    one_error_line(runner.invoke(app, ["sandbox", "chat", "--url", url], env=env, input="hi\n"))
    assert files_in(tmp_path) == set()


# --- what is not a known failure ------------------------------------------------------------


def test_a_bug_keeps_its_traceback(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only known failures are shortened: anything else is a bug and must stay visible."""

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("bot.cli.support.open_store", broken)
    monkeypatch.setattr("bot.cli.main.open_store", broken)
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert isinstance(result.exception, ZeroDivisionError)
