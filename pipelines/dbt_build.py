"""Run the dbt project without Dagster: build it against a database, prepare its manifest.

Each invocation writes its artifacts to a private temporary target folder, so several
processes (tests, the scheduler, a developer's shell) can run dbt on one checkout at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pipelines.dbt_env import dbt_env

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
_PROJECT_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md"}
_SKIP_DIRS = {"target", "logs", "dbt_packages"}


class DbtError(RuntimeError):
    """A dbt command failed; ``output`` holds what dbt printed."""

    def __init__(self, command: Sequence[str], returncode: int, output: str):
        self.command = list(command)
        self.returncode = returncode
        self.output = output
        # The message keeps the end of the log, where dbt summarises what failed.
        tail = "\n".join(output.rstrip().splitlines()[-60:])
        super().__init__(f"dbt {' '.join(command)} exited with {returncode}:\n{tail}")


def dbt_executable() -> str:
    """The dbt next to the running interpreter (the venv's), so PATH does not matter."""
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    return shutil.which("dbt") or "dbt"


def _run_dbt(
    args: Sequence[str],
    env: dict[str, str],
    target_dir: Path,
    on_line: Callable[[str], None] | None = None,
) -> str:
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_dir),
        "--log-path",
        str(target_dir),
    ]
    full_env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        **env,
    }
    # A DBT_LOG_FORMAT=json inherited from a Dagster-run parent would make errors unreadable.
    full_env.pop("DBT_LOG_FORMAT", None)
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=DBT_PROJECT_DIR,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
    output = "".join(lines)
    if proc.returncode != 0:
        raise DbtError(args, proc.returncode, output)
    return output


def _newest_project_mtime() -> float:
    newest = 0.0
    for root, dirs, files in os.walk(DBT_PROJECT_DIR):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            path = Path(root, name)
            if path.suffix in _PROJECT_SUFFIXES:
                newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_current() -> bool:
    """True when target/manifest.json exists and is newer than every project file."""
    return MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_project_mtime()


def prepare_manifest() -> Path:
    """Make sure ``dbt/target/manifest.json`` exists and is current; return its path.

    Runs ``dbt parse`` (a few seconds, no database needed) only when the manifest is missing
    or older than the project files. The new manifest is moved into place atomically, so a
    process loading the Dagster definitions meanwhile never reads a half-written file.
    Raises DbtError if the project does not parse.
    """
    if manifest_is_current():
        return MANIFEST_PATH
    MANIFEST_PATH.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="parse-", dir=MANIFEST_PATH.parent) as tmp:
        _run_dbt(["parse", "--quiet"], {}, Path(tmp))
        partial = Path(tmp) / "partial_parse.msgpack"
        if partial.exists():
            os.replace(partial, MANIFEST_PATH.parent / "partial_parse.msgpack")
        os.replace(Path(tmp) / "manifest.json", MANIFEST_PATH)
    return MANIFEST_PATH


def run_dbt_build(
    database_url: str,
    select: list[str] | None = None,
    *,
    full_refresh: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run ``dbt build`` (models, data tests, unit tests) against ``database_url``.

    ``select`` is passed to ``--select`` (dbt selection syntax, e.g. ``["fct_carts+"]``);
    None builds everything. ``full_refresh`` rebuilds incremental models from scratch.
    ``on_line`` receives each line dbt prints, as it prints it (progress). Returns dbt's
    output when it succeeded; raises DbtError carrying that output when any model or
    error-severity test failed, or dbt could not connect.
    """
    args = ["build"]
    if select:
        # cautious: a relationships test of an unselected model (whose view may not exist
        # yet on a fresh database) is not run just because it refers to a selected one.
        args += ["--select", *select, "--indirect-selection", "cautious"]
    if full_refresh:
        args.append("--full-refresh")
    with tempfile.TemporaryDirectory(prefix="cartrecovery-dbt-") as tmp:
        # Reuse the last parse so a build does not re-parse unchanged files.
        partial = MANIFEST_PATH.parent / "partial_parse.msgpack"
        if partial.exists():
            shutil.copy2(partial, Path(tmp) / "partial_parse.msgpack")
        return _run_dbt(args, dbt_env(database_url), Path(tmp), on_line)
