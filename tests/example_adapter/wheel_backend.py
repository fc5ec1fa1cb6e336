"""The smallest PEP 517 build backend that makes a correct wheel of this one package
(METADATA, WHEEL, entry_points.txt, RECORD), so pip installs it without setuptools or wheel."""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
PACKAGE = "cartrecovery_example_adapter"


def _project() -> dict:
    return tomllib.loads((HERE / "pyproject.toml").read_text())["project"]


def _dist_info(project: dict) -> tuple[str, dict[str, str]]:
    name = project["name"].replace("-", "_")
    folder = f"{name}-{project['version']}.dist-info"
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) + "\n"
        for group, points in project.get("entry-points", {}).items()
    )
    return folder, {
        "METADATA": (
            f"Metadata-Version: 2.1\nName: {project['name']}\n"
            f"Version: {project['version']}\nSummary: {project['description']}\n"
            f"Requires-Python: {project['requires-python']}\n"
        ),
        "WHEEL": (
            "Wheel-Version: 1.0\nGenerator: wheel_backend\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
        "entry_points.txt": entry_points,
    }


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}\n"


def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    project = _project()
    folder, meta = _dist_info(project)
    filename = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    files = {
        str(p.relative_to(HERE)): p.read_bytes() for p in sorted((HERE / PACKAGE).rglob("*.py"))
    }
    files |= {f"{folder}/{name}": text.encode() for name, text in meta.items()}
    record = "".join(_record_line(path, data) for path, data in files.items())
    record += f"{folder}/RECORD,,\n"
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in files.items():
            whl.writestr(path, data)
        whl.writestr(f"{folder}/RECORD", record)
    return filename
