"""A real PostgreSQL server for the search tests, started once per session in a temporary directory
on 127.0.0.1: `postgres` is a trusted superuser's URL, `postgres_password_login` a role that logs
in with a password only (scram-sha-256)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class PostgresServer:
    bindir: Path
    port: int
    home: Path
    as_owner: list[str]

    def run(self, *cmd) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_owner, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    def sql(self, statement: str, database: str = "postgres") -> None:
        self.run(self.bindir / "psql", "-h", self.home, "-p", self.port, "-U", "postgres", "-d", database,
                 "-v", "ON_ERROR_STOP=1", "-c", statement)  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL cluster of its own (the server refuses to run as root, so as the postgres user
    when the tests run as root). Over TCP the role `sweeper` must give its password
    (scram-sha-256); every other role is trusted, as is the Unix socket in the cluster's directory."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not binaries:
        pytest.skip("PostgreSQL server is not installed (.ci/run installs it: apt-get install postgresql)")
    bindir = Path(binaries[-1]).parent
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="bigmodel-pg-"))
    if as_owner:
        shutil.chown(home, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = PostgresServer(bindir, port, home, as_owner)
    data = home / "data"
    server.run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust")
    hba = data / "pg_hba.conf"
    hba.write_text("host all sweeper 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    server.run(
        bindir / "pg_ctl", "-D", data, "-l", home / "log", "-w", "-o", f"-h 127.0.0.1 -p {port} -k {home}", "start"
    )
    try:
        yield server
    finally:
        server.run(bindir / "pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(postgres_server):
    """A database `optuna` for the trusted superuser: its URL (no password)."""
    server = postgres_server
    server.run(server.bindir / "createdb", "-h", "127.0.0.1", "-p", server.port, "-U", "postgres", "optuna")
    return f"postgresql://postgres@127.0.0.1:{server.port}/optuna"


SWEEPER_PASSWORD = "Pw-7q3xZk9r-secret"


@pytest.fixture(scope="session")
def postgres_password_login(postgres_server):
    """The role `sweeper`, which logs in over TCP with SWEEPER_PASSWORD only, owning database
    `studies`: (user, password, port, database)."""
    server = postgres_server
    server.sql(f"SET password_encryption = 'scram-sha-256'; CREATE ROLE sweeper LOGIN PASSWORD '{SWEEPER_PASSWORD}'")
    server.sql("CREATE DATABASE studies OWNER sweeper")
    return "sweeper", SWEEPER_PASSWORD, server.port, "studies"
