"""Run the dbt project without Dagster: build it against a database, prepare its manifest.

Each invocation writes its artifacts to a private temporary target folder, so several
processes (tests, the scheduler, a developer's shell) can run dbt on one checkout at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import psycopg.sql
from dbt.cli.main import dbtRunner
from dbt.contracts.graph.manifest import Manifest

from pipelines.dbt_env import dbt_env

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
_PROJECT_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md"}
_SKIP_DIRS = {"target", "logs", "dbt_packages"}
# Schemas (<target schema>_<layer>) of the view layers, and the prefix of their stamp.
VIEW_LAYERS = ("staging", "intermediate")
VIEWS_STAMP = "views of dbt project "


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
    """The dbt next to the running interpreter (the venv's), so PATH does not matter
    (Dagster's ``DbtCliResource`` runs it as a subprocess)."""
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    return shutil.which("dbt") or "dbt"


# dbt runs in this process (``dbtRunner``): starting a dbt process and parsing the project
# cost more than an incremental build's models (docs/analytics.md, "Incremental and full
# builds"). One invocation at a time: dbt keeps global state (flags, adapters, environment).
_dbt_lock = threading.RLock()
# Parsed manifests by (project fingerprint, dbt connection variables): a node's database
# and schema come from the profile, so a manifest only serves the database it was parsed for.
_manifests: dict[tuple[str, tuple[tuple[str, str], ...]], Manifest] = {}


def _profile_key(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    values = {k: v for k, v in {**os.environ, **env}.items() if k.startswith("DBT_")}
    return tuple(sorted(values.items()))


def _partial_parse_file(key: tuple[tuple[str, str], ...]) -> Path:
    """Where the last parse for this profile keeps dbt's partial-parse state: dbt discards
    it when the profile differs, so each database gets its own."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return MANIFEST_PATH.parent / f"partial_parse-{digest}.msgpack"


def _invoke(
    args: Sequence[str],
    target_dir: Path,
    lines: list[str],
    on_line: Callable[[str], None] | None,
    manifest: Manifest | None = None,
):
    def collect(event) -> None:
        if event.info.level == "debug":
            return
        line = f"{time.strftime('%H:%M:%S')}  {event.info.msg}"
        lines.append(line)
        if on_line is not None:
            on_line(line)

    common = [
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_dir),
        "--log-path",
        str(target_dir),
    ]
    # dbt's own console and file logs are off: its events reach ``collect``.
    flags = ["--log-level", "none", "--log-level-file", "none", "--no-send-anonymous-usage-stats"]
    return dbtRunner(manifest=manifest, callbacks=[collect]).invoke([*flags, *args, *common])


def _run_dbt(
    args: Sequence[str],
    env: dict[str, str],
    target_dir: Path,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run one dbt command in this process with ``env`` (the connection variables) set,
    reusing the manifest parsed for this project and profile, if any. Returns what dbt
    printed; raises DbtError with it when the command failed."""
    lines: list[str] = []
    with _dbt_lock, dbt_environment_overrides(env):
        key = _profile_key(env)
        cache_key = (project_fingerprint(), key)
        manifest = _manifests.get(cache_key)
        if manifest is None and args[0] != "parse":
            manifest = _parse(key, target_dir, lines, on_line)
            if manifest is not None:
                _manifests.clear()  # one database at a time is the common case: keep memory flat
                _manifests[cache_key] = manifest
        if manifest is None and args[0] != "parse":
            raise DbtError(["parse"], 2, "".join(f"{line}\n" for line in lines))
        result = _invoke(args, target_dir, lines, on_line, manifest)
    output = "".join(f"{line}\n" for line in lines)
    if not result.success:
        if result.exception is not None:
            output += f"{result.exception}\n"
        raise DbtError(args, 1 if result.exception is None else 2, output)
    return output


def _parse(key, target_dir: Path, lines: list[str], on_line) -> Manifest | None:
    """Parse the project (partially, from the last parse for this profile when there is one)."""
    partial = _partial_parse_file(key)
    if partial.exists():
        shutil.copy2(partial, target_dir / "partial_parse.msgpack")
    result = _invoke(["parse"], target_dir, lines, on_line)
    if not result.success:
        if result.exception is not None:
            lines.append(str(result.exception))
        return None
    written = target_dir / "partial_parse.msgpack"
    if written.exists():
        partial.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial.with_suffix(f".{os.getpid()}.tmp")
        shutil.copy2(written, tmp)
        os.replace(tmp, partial)
    return result.result


@contextmanager
def dbt_environment_overrides(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` (dbt's ``env_var()`` reads it) for the block."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    # A DBT_LOG_FORMAT=json inherited from a Dagster-run parent would make errors unreadable.
    log_format = os.environ.pop("DBT_LOG_FORMAT", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if log_format is not None:
            os.environ["DBT_LOG_FORMAT"] = log_format


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


def project_fingerprint() -> str:
    """A hash of every dbt project file (models, macros, tests, dbt_project.yml): when it is
    unchanged since the views were last created, their definitions are current."""
    paths = []
    # Pruning dirs in place only works while walking (not over a materialised walk): dbt's
    # own output (target/, logs/) changes with every run and must not count.
    for root, dirs, files in os.walk(DBT_PROJECT_DIR):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        paths += [Path(root, n) for n in files if Path(n).suffix in _PROJECT_SUFFIXES]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _view_schemas() -> list[str]:
    base = os.environ.get("DBT_POSTGRES_SCHEMA", "analytics")
    return [f"{base}_{layer}" for layer in VIEW_LAYERS]


def views_are_current(database_url: str) -> bool:
    """True when the staging and intermediate views were created by a successful build of
    this very project (:func:`record_views_built` stamped its fingerprint on their schemas).
    Views read their sources live, so an incremental build need not re-create them."""
    expected = VIEWS_STAMP + project_fingerprint()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT n, obj_description(to_regnamespace(n), 'pg_namespace') AS stamp"
                " FROM unnest(%s::text[]) AS n",
                (_view_schemas(),),
            ).fetchall()
    except psycopg.Error:
        return False
    return all(stamp == expected for _, stamp in rows)


def record_views_built(database_url: str) -> None:
    """Stamp the view schemas with the project's fingerprint after a build that created the
    views (see :func:`views_are_current`)."""
    stamp = VIEWS_STAMP + project_fingerprint()
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in _view_schemas():
            if conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()[0]:
                conn.execute(
                    psycopg.sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                        psycopg.sql.Identifier(schema), psycopg.sql.Literal(stamp)
                    )
                )


# The marts schema's comment records what the last whole build applied (JSON after this
# prefix): ``changes_until``, the database time it started, ``settings``, a fingerprint of
# the attribution settings in force (int_org_attribution_settings), and ``project``, the
# dbt project's (:func:`project_fingerprint`).
CHANGES_STAMP = "changes applied by dbt build "
CHANGES_SINCE = "CARTRECOVERY_CHANGES_SINCE"


def _schema(layer: str) -> str:
    return f"{os.environ.get('DBT_POSTGRES_SCHEMA', 'analytics')}_{layer}"


def _settings_fingerprint(conn: psycopg.Connection) -> str | None:
    view = f"{_schema('intermediate')}.int_org_attribution_settings"
    if conn.execute("SELECT to_regclass(%s) IS NULL", (view,)).fetchone()[0]:
        return None
    query = psycopg.sql.SQL(
        "SELECT md5(coalesce(string_agg(s::text, '|' ORDER BY s.org_id), '')) FROM {} AS s"
    ).format(psycopg.sql.Identifier(_schema("intermediate"), "int_org_attribution_settings"))
    return conn.execute(query).fetchone()[0]


class BuildPlan:
    """How a build runs against what the marts already hold (docs/analytics.md,
    "Incremental and full builds"). An incremental build recomputes what changed since the
    last whole build started (``env`` passes that time to the models); it becomes a full
    refresh when there is no record of one, when the attribution settings (windows, touch,
    half-life, reporting currency) differ from the ones it used, or when the dbt project
    changed since (a model's rows follow the SQL that built them). :meth:`record`
    stores this build's start after it succeeded."""

    def __init__(self, database_url: str, *, full_refresh: bool, whole: bool):
        self.database_url = database_url
        self.whole = whole
        self.reason: str | None = None
        self.project = project_fingerprint()
        self.started = None
        self.settings = None
        comment = None
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                self.started = conn.execute("SELECT now()").fetchone()[0]
                self.settings = _settings_fingerprint(conn)
                comment = conn.execute(
                    "SELECT obj_description(to_regnamespace(%s), 'pg_namespace')",
                    (_schema("marts"),),
                ).fetchone()[0]
        except psycopg.Error:
            pass  # dbt reports what is wrong with the database, in its own words
        last = None
        if comment and comment.startswith(CHANGES_STAMP):
            try:
                last = json.loads(comment[len(CHANGES_STAMP) :])
            except ValueError:
                last = None
        self.full_refresh = full_refresh
        since = "-infinity"
        if not full_refresh:
            if last is None:
                self.reason = "no record of a previous whole build"
            elif self.settings is None or last.get("settings") != self.settings:
                self.reason = "attribution settings changed since the last build"
            elif last.get("project") != self.project:
                # A model's SQL or columns changed: rows already built follow the old one.
                self.reason = "the dbt project changed since the last build"
            else:
                since = last["changes_until"]
            self.full_refresh = self.reason is not None
            if not whole:
                # int_changes lists the changes for a whole build: the models of a selected
                # build are rebuilt whole instead (as table marts always were).
                self.full_refresh = True
                self.reason = None
        self.env = {CHANGES_SINCE: since}

    def record(self) -> None:
        """After a successful whole build: later builds recompute what changed since it."""
        if not self.whole or self.started is None:
            return
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            settings = self.settings or _settings_fingerprint(conn)
            stamp = {
                "changes_until": self.started.isoformat(),
                "settings": settings,
                "project": self.project,
            }
            if conn.execute(
                "SELECT to_regnamespace(%s) IS NOT NULL", (_schema("marts"),)
            ).fetchone()[0]:
                conn.execute(
                    psycopg.sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                        psycopg.sql.Identifier(_schema("marts")),
                        psycopg.sql.Literal(CHANGES_STAMP + json.dumps(stamp)),
                    )
                )


def incremental_exclusions(database_url: str, *, tests: bool) -> list[str]:
    """dbt arguments that trim an incremental build to what changed: without ``tests`` no
    data or unit tests (full builds run them); with the views current (the project is
    unchanged since they were created) the views are left as they are."""
    args: list[str] = []
    if not tests:
        args += ["--exclude-resource-type", "unit_test", "test"]
    if views_are_current(database_url):
        args += ["--exclude", "config.materialized:view"]
    return args


def run_dbt_build(
    database_url: str,
    select: list[str] | None = None,
    *,
    full_refresh: bool = False,
    tests: bool | None = None,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run ``dbt build`` against ``database_url``.

    ``select`` is passed to ``--select`` (dbt selection syntax, e.g. ``["fct_carts+"]``);
    None builds everything. ``full_refresh`` rebuilds incremental models from scratch.
    ``tests`` runs the data and unit tests; None (the default) runs them in full builds and
    in selected builds, not in a plain incremental build, which also leaves the views alone
    when the project did not change since they were created (docs/analytics.md,
    "Incremental builds"). ``on_line`` receives each line dbt prints, as it prints it
    (progress). Returns dbt's output when it succeeded; raises DbtError carrying that output
    when any model or error-severity test failed, or dbt could not connect.
    """
    incremental = not full_refresh and not select
    if tests is None:
        tests = not incremental
    plan = BuildPlan(database_url, full_refresh=full_refresh, whole=not select)
    if plan.reason and plan.full_refresh and on_line is not None:
        on_line(f"warehouse: full refresh ({plan.reason})")
    # No manifest.json or run_results.json: they would go to a temporary folder nobody reads,
    # and serialising the manifest took half a second of an incremental build.
    args = ["build", "--no-write-json"]
    if select:
        # cautious: a relationships test of an unselected model (whose view may not exist
        # yet on a fresh database) is not run just because it refers to a selected one.
        args += ["--select", *select, "--indirect-selection", "cautious"]
    if plan.full_refresh:
        args.append("--full-refresh")
    if incremental and not plan.full_refresh:
        args += incremental_exclusions(database_url, tests=tests)
    elif not tests:
        args += ["--exclude-resource-type", "unit_test", "test"]
    with tempfile.TemporaryDirectory(prefix="cartrecovery-dbt-") as tmp:
        output = _run_dbt(args, {**dbt_env(database_url), **plan.env}, Path(tmp), on_line)
    plan.record()
    if not select and "config.materialized:view" not in args:
        record_views_built(database_url)
    return output
