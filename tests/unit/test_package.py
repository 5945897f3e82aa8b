"""The distribution: the wheel builds offline, holds what it should, installs into a clean venv and runs.

There is no container engine here, so the Dockerfile is checked statically and the image's install path
(wheel into a fresh virtualenv, `azsnap` console script) is exercised directly.
"""

import fnmatch
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator

import pytest

import azsnap

ROOT = pathlib.Path(__file__).resolve().parents[2]
OFFLINE = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Build the wheel from a copy of the sources, so the work tree gets no build/ or egg-info churn."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(
        ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        env=OFFLINE,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("azsnap-*.whl")
    return built


def wheel_names(path: pathlib.Path) -> set[str]:
    with zipfile.ZipFile(path) as whl:
        return set(whl.namelist())


def read(path: pathlib.Path, member_glob: str) -> str:
    with zipfile.ZipFile(path) as whl:
        (member,) = fnmatch.filter(whl.namelist(), member_glob)
        return whl.read(member).decode()


def test_wheel_holds_every_module_and_data_file(wheel: pathlib.Path) -> None:
    names = wheel_names(wheel)
    package = ROOT / "operator" / "azsnap"
    expected = {str(p.relative_to(ROOT / "operator")) for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= names
    assert "azsnap/py.typed" in names
    assert "azsnap/data/argocd-health.lua" in names
    assert {name.split("/")[0] for name in names} == {"azsnap", f"azsnap-{azsnap.__version__}.dist-info"}


def test_wheel_metadata_and_entry_point(wheel: pathlib.Path) -> None:
    assert wheel.name == f"azsnap-{azsnap.__version__}-py3-none-any.whl"
    entry_points = read(wheel, "*.dist-info/entry_points.txt")
    assert re.search(r"^\[console_scripts\]\s*\nazsnap = azsnap\.cli:main$", entry_points, re.M)
    metadata = read(wheel, "*.dist-info/METADATA")
    requires = {
        re.split(r"[<>=!~; \[]", line.split(": ", 1)[1])[0].lower()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    }
    # tzdata: the slim image has no OS time zone database; kopf and prometheus-client: the operator itself.
    assert {"tzdata", "kopf", "prometheus-client", "azure-identity", "azure-mgmt-compute"} <= requires
    assert "Requires-Python: >=3.11" in metadata


@pytest.fixture(scope="module")
def clean_venv(wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A fresh venv with only the wheel installed; dependencies are borrowed read-only from the test venv.

    The borrowed site-packages is added by a .pth line, which does not run that directory's own .pth files,
    so the editable install of the work tree stays invisible.
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        env=OFFLINE,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (pathlib.Path(site) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_installed(venv: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in OFFLINE.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def test_console_script_from_the_installed_wheel(clean_venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    where = run_installed(clean_venv, "python", "-c", "import azsnap; print(azsnap.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert pathlib.Path(where.stdout.strip()).is_relative_to(clean_venv), "imported the work tree, not the wheel"

    helped = run_installed(clean_venv, "azsnap", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: azsnap" in helped.stdout
    assert re.search(r"\brun\b", helped.stdout)

    version = run_installed(clean_venv, "azsnap", "version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, azsnap.__version__)


def test_packaged_data_is_readable_from_the_install(clean_venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    code = "import importlib.resources as r; print(len((r.files('azsnap') / 'data' / 'argocd-health.lua').read_text()))"
    result = run_installed(clean_venv, "python", "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len((ROOT / "operator" / "azsnap" / "data" / "argocd-health.lua").read_text())


# -- Dockerfile, statically ---------------------------------------------------------------------------------------


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    parsed: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            parsed.append([])
        parsed[-1].append((instruction.upper(), args.strip()))
    return parsed


def instructions(stage: list[tuple[str, str]], name: str) -> Iterator[str]:
    return (args for instruction, args in stage if instruction == name)


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    preamble, *built = stages()
    assert len(built) == 2
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in preamble
    assert next(instructions(built[0], "FROM")) == "${PYTHON_IMAGE} AS builder"
    assert next(instructions(built[1], "FROM")) == "${PYTHON_IMAGE}"


def test_final_stage_runs_unprivileged_without_build_tools() -> None:
    final = stages()[-1]
    users = list(instructions(final, "USER"))
    assert users == ["65532:65532"]
    assert [i for i, _ in final][-3:] == ["EXPOSE", "ENTRYPOINT", "CMD"] or users, ()
    user_index = [i for i, _ in final].index("USER")
    assert all(i != "RUN" for i, _ in final[user_index:]), "nothing runs as root after USER"
    runs = " ".join(instructions(final, "RUN"))
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get install", "python3-dev", "git "):
        assert tool not in runs
    assert "pip uninstall --yes pip" in runs
    assert not list(instructions(final, "COPY")), "the final stage takes wheels by bind mount, never the sources"
    assert "--no-index" in runs


def test_entry_point_is_azsnap_run() -> None:
    final = stages()[-1]
    assert list(instructions(final, "ENTRYPOINT")) == ['["azsnap"]']
    assert list(instructions(final, "CMD")) == ['["run"]']
    assert set(" ".join(instructions(final, "EXPOSE")).split()) == {"8080", "8081"}


def test_build_context_holds_what_the_builder_copies() -> None:
    builder = stages()[1]
    sources = [args.split()[:-1] for args in instructions(builder, "COPY")]
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    for group in sources:
        for source in group:
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore, f"{source} is excluded from the build context"
