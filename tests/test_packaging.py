"""The package works when installed from a wheel (not editable): configs and kernel sources ship
inside it, and `harness-run` works from any folder.

The wheel is built from a copy of the checkout (so the build leaves nothing in it) and installed
into a fresh virtual environment that sees the checkout's environment only for the dependencies
(torch, hydra, ...), through a .pth file: `harness` itself can only come from the wheel.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a build must not see or copy, at the top of the checkout: version control, environments,
# generated outputs (harness/data is a package: these names count only at the top).
NOT_SOURCES = {".git", ".venv", "build", "dist", ".pytest_cache", "data", "outputs", "multirun", "runs",
               "reports", "wandb"}


def _not_sources(folder: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return ignored | (NOT_SOURCES & set(names) if Path(folder) == ROOT else set())


def _run(args, **kwargs):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_not_sources)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
          "--wheel-dir", tmp_path / "wheels", source])
    (wheel,) = (tmp_path / "wheels").glob("harness-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path) -> Path:
    """A new environment from the same base interpreter, whose dependencies are the running ones."""
    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Appended after the venv's own site-packages, and not a site dir: the checkout's editable
    # install (a .pth file there) is not processed, so it cannot shadow the wheel.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv


@pytest.mark.slow
def test_wheel_install_runs_with_configs_and_fused_kernels_from_an_empty_folder(tmp_path):
    from harness.activations import kernels

    if kernels.load() is None:  # built here first, so the installed copy can reuse the build
        pytest.skip(f"compiled kernels unavailable: {kernels.status()['error']}")
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"harness/conf/config.yaml", "harness/conf/trainer/default.yaml",
            "harness/activations/csrc/gate_kernels.cpp"} <= names

    venv = _fresh_venv(tmp_path)
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
          "--no-index", "--quiet", wheel])
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([venv / "bin" / "python", "-c", "import harness, harness.sweep.app as app\n"
                  "print(*harness.__path__, app.__file__, sep='\\n')"], cwd=work, env=env)
    assert all(Path(p).is_relative_to(venv) for p in where.stdout.split())  # the wheel's copy only
    for script in ("harness-run", "harness-report", "harness-bench"):
        assert (venv / "bin" / script).is_file()

    done = _run([venv / "bin" / "harness-run", "trainer.steps=50", "trainer.eval_every=25", "progress=false"],
                cwd=work, env=env)
    assert "No CUDA runtime is found" not in done.stderr
    (path,) = work.glob("outputs/runs/*/*/record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["metrics"]["steps_done"] == 50
    used = record["environment"]["activation_kernels"]
    assert used["loaded"] is True and used["error"] is None
    # Same sources, flags and torch as the checkout: the install reuses the checkout's build.
    assert used["built_in_process"] is False and used["build_dir"] == str(kernels.build_dir())
