"""Issue 10: mt-cli as users install it. The wheel is built from the source tree, installed into
a fresh virtual environment that cannot see the checkout, and run from an empty folder: the
presets and the demo corpus must come with the wheel (package data), not from a checkout
around it. Offline: the new environment gets no downloads; it borrows this interpreter's
installed dependencies (TensorFlow, SentencePiece, ...) through a .pth file that names their
site-packages, never the source tree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import DEMO_DIR, PRESET_DIR, REPO

PRESETS = ["demo.yaml", "transformer-base.yaml", "transformer-big.yaml", "transformer-small.yaml",
           "transformer-tiny.yaml"]
DEMO_FILES = ["README.md", *(f"{split}.{lang}" for split in ("train", "dev", "test") for lang in ("en", "de"))]


def _env() -> dict[str, str]:
    """This process's environment without what would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}


def _run(args: list[str | Path], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=600, check=False, **kwargs)  # type: ignore[call-overload]


def _build_wheel(work: Path) -> Path:
    """`pip wheel` on a copy of the sources: pip builds in the tree it is given and leaves build/
    there, whose stale files would go into the next wheel built from that tree. With this
    interpreter's setuptools and wheel, without build isolation: nothing is downloaded."""
    src = work / "src"
    shutil.copytree(REPO / "mt_cli", src / "mt_cli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    missing = [name for name in ("setuptools", "wheel") if importlib.util.find_spec(name) is None]
    if missing:  # tests never download: the [dev] extra installs both
        pytest.fail(f"{', '.join(missing)} not installed: pip install -e '.[dev]'")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  work / "dist", src], work)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("mt_cli-*.whl")
    return wheel


def _fresh_venv(work: Path, wheel: Path) -> Path:
    """A venv holding the wheel alone, its dependencies borrowed from this interpreter's
    site-packages, never the checkout's source tree."""
    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], work)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                      "-q", wheel], work)
    assert installed.returncode == 0, installed.stderr
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work)
    # Every site-packages of this interpreter, also one inside the checkout (CI's .ci-venv): a path
    # listed in a .pth file is only appended to sys.path (its own .pth files, such as an editable
    # install's finder, are not run), and the wheel's own site-packages comes first.
    borrowed = site.getsitepackages()
    (Path(purelib.stdout.strip()) / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(wheel, venv, an empty working folder)."""
    work = tmp_path_factory.mktemp("wheel").resolve()
    wheel = _build_wheel(work)
    venv = _fresh_venv(work, wheel)
    folder = work / "elsewhere"
    folder.mkdir()
    return wheel, venv, folder


def test_the_wheel_holds_the_presets_and_the_demo_corpus(installed: tuple[Path, Path, Path]) -> None:
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mt_cli/core/presets/{name}" for name in PRESETS} <= names
    assert {f"mt_cli/core/demo_data/{name}" for name in DEMO_FILES} <= names
    assert sorted(p.name for p in PRESET_DIR.glob("*.yaml")) == PRESETS  # the list above is complete
    assert sorted(p.name for p in DEMO_DIR.iterdir()) == sorted(DEMO_FILES)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: tuple[Path, Path, Path]) -> None:
    _, venv, folder = installed
    code = "import sys, mt_cli; print(mt_cli.__file__); print(*sys.path, sep='\\n')"
    shown = _run([venv / "bin" / "python", "-c", code], folder)
    assert shown.returncode == 0, shown.stderr
    where, *path = shown.stdout.splitlines()
    assert Path(where).is_relative_to(venv), where
    source = (REPO / "mt_cli").resolve()
    assert not [p for p in path if p and (Path(p) / "mt_cli").resolve() == source], path  # the checkout's package


def test_config_show_names_a_preset_from_any_folder(installed: tuple[Path, Path, Path]) -> None:
    """Before the presets were package data: `.../configs/transformer-small.yaml: config file
    not found` (or not a preset at all)."""
    _, venv, folder = installed
    shown = _run([venv / "bin" / "mt-cli", "config", "show", "transformer-small"], folder)
    assert (shown.returncode, shown.stderr) == (0, "")
    model = yaml.safe_load(shown.stdout)["model"]
    assert (model["encoder_layers"], model["hidden_dim"], model["num_heads"]) == (3, 256, 4)
    listed = _run([venv / "bin" / "mt-cli", "config", "presets"], folder)
    assert listed.returncode == 0, listed.stderr
    files = {line.split()[0]: Path(line.split()[1]) for line in listed.stdout.splitlines()}
    assert sorted(files) == [name.removesuffix(".yaml") for name in PRESETS]
    assert all(path.is_relative_to(venv) and path.is_file() for path in files.values()), files


def test_the_quickstart_tokenizer_step_runs_on_the_shipped_corpus(installed: tuple[Path, Path, Path]) -> None:
    """The quickstart's first step, SentencePiece trained on the demo preset's corpus as
    training.run_dir.run_tokenizers trains it, from the installed wheel in an empty folder."""
    _, venv, folder = installed
    mt_cli = venv / "bin" / "mt-cli"
    shown = _run([mt_cli, "config", "show", "demo"], folder)
    assert (shown.returncode, shown.stderr) == (0, "")
    data = yaml.safe_load(shown.stdout)["data"]
    corpus = [Path(data["train"][0]["source"]), Path(data["train"][0]["target"]), Path(data["test"]["source"])]
    assert all(p.is_relative_to(venv) and p.is_file() for p in corpus), corpus
    trained = _run([mt_cli, "tokenize", "train", "demo", "--model-prefix", "runs/quickstart/spm"], folder)
    assert trained.returncode == 0, trained.stderr
    spm = folder / "runs" / "quickstart" / "spm.model"
    assert trained.stderr == f"wrote {Path('runs/quickstart/spm.model')}\n"
    assert spm.is_file()
    line = corpus[2].read_text(encoding="utf-8").splitlines()[0]
    encoded = _run([mt_cli, "tokenize", "encode", "-m", spm], folder, input=line + "\n")
    assert encoded.returncode == 0, encoded.stderr
    decoded = _run([mt_cli, "tokenize", "decode", "-m", spm], folder, input=encoded.stdout)
    assert (decoded.returncode, decoded.stdout) == (0, line + "\n"), decoded.stderr
