"""Every task of the tsgu workspace.

torch is pinned to an exact version in every session (a constraints file passed to every
install) and checked at the session's start: an unpinned torch makes the resolver pull the
newest CUDA build and gigabytes of NVIDIA wheels. The machines hold the torch 2.13.0 CPU
wheel locally; pip finds it through PIP_FIND_LINKS, and uv gets the same folders as
--find-links here.

    nox -s tests                           every package's tests, one environment (CI)
    nox -s "tests_torch(torch='2.5.1')"    the same on another torch (2.5.1, 2.8.0, 2.11.0, 2.13.0)
    nox -s tests_pkg                       each package alone, with only its declared dependencies
    nox -s tests_cuda                      on a GPU machine: the suite on CUDA torch builds
    nox -s tests_cuda_system               on a GPU machine: the suite on the installed torch
    nox -s compat                          tsgu against the torchsparsegradutils 0.2 releases, live
    nox -s compat_suite                    0.2.2's and 0.2.7's own test suites against the drop-in
    nox -s lint | build | docs | bench | demo
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
DEFAULT_TORCH = os.environ.get("TSGU_TORCH", "2.13.0")
TORCH_MATRIX = ["2.5.1", "2.8.0", "2.11.0", "2.13.0"]
# torch/CUDA combinations users run: (torch, CUDA wheel tag on download.pytorch.org)
CUDA_MATRIX = [("2.11.0", "cu128"), ("2.13.0", "cu130")]


def _packages() -> list[Path]:
    """Package folders in dependency order: tsgu-core, the satellites, the bundles."""
    found = sorted(p.parent for p in PACKAGES_DIR.glob("*/pyproject.toml"))
    order = {"tsgu-core": 0, "tsgu": 2, "torchsparsegradutils": 3}
    return sorted(found, key=lambda p: (order.get(p.name, 1), p.name))


def _has_test_extra(package: Path) -> bool:
    meta = tomllib.loads((package / "pyproject.toml").read_text())
    return "test" in meta["project"].get("optional-dependencies", {})


def _requirement(package: Path, editable: bool = True) -> list[str]:
    spec = f"{package}[test]" if _has_test_extra(package) else str(package)
    return ["-e", spec] if editable else [spec]


def _local_dependencies(package: Path) -> list[Path]:
    """The tree's packages that ``package`` declares (its required dependencies), recursively."""
    folders = {p.name: p for p in _packages()}
    found: list[Path] = []
    pending = [package]
    while pending:
        meta = tomllib.loads((pending.pop() / "pyproject.toml").read_text())
        for requirement in meta["project"].get("dependencies", []):
            name = requirement.split(";")[0].split("[")[0]
            for stop in "<>=!~ ":
                name = name.split(stop)[0]
            dep = folders.get(name.strip())
            if dep is not None and dep not in found:
                found.append(dep)
                pending.append(dep)
    return found


def _find_links() -> list[str]:
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    return [arg for link in links for arg in ("--find-links", link)]


def _constraints(session: nox.Session, torch_version: str) -> list[str]:
    path = Path(session.create_tmp()) / "torch-constraint.txt"
    path.write_text(f"torch=={torch_version}\n")
    return ["-c", str(path)]


def _install(session: nox.Session, torch_version: str, *args: str) -> None:
    """Install ``args`` with torch held at ``torch_version``."""
    session.install(
        f"torch=={torch_version}", *args, *_constraints(session, torch_version), *_find_links()
    )


def _check_torch(session: nox.Session, torch_version: str, python: str = "python") -> None:
    session.run(
        python,
        "-c",
        "import sys, torch; v = torch.__version__.split('+')[0]; "
        f"sys.exit(0 if v == {torch_version!r} else "
        f"'expected torch {torch_version}, got ' + torch.__version__)",
        external=python != "python",
    )


def _pytest(session: nox.Session, *paths: str, python: str = "python", **kwargs) -> None:
    # Test tensors are tiny: OpenMP threads only add spin-wait overhead (10x and more on a
    # loaded 2-core machine).
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **kwargs.pop("env", {})}
    session.run(python, "-m", "pytest", *paths, *session.posargs, env=env, **kwargs)


def _all_tests(session: nox.Session, torch_version: str) -> None:
    requirements = [arg for pkg in _packages() for arg in _requirement(pkg)]
    _install(session, torch_version, *requirements)
    _check_torch(session, torch_version)
    _pytest(session, "packages")


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests (and doctests) in one environment, editable installs."""
    _all_tests(session, DEFAULT_TORCH)


@nox.session
@nox.parametrize("torch", TORCH_MATRIX)
def tests_torch(session: nox.Session, torch: str) -> None:
    """The suite on each supported torch; versions other than 2.13.0 download CUDA builds (GBs)."""
    _all_tests(session, torch)


@nox.session
@nox.parametrize("package", [p.name for p in _packages()])
def tests_pkg(session: nox.Session, package: str) -> None:
    """One package's tests with only that package's declared dependencies installed."""
    path = PACKAGES_DIR / package
    # tsgu packages are not on a registry yet: the ones it declares come from this tree
    local = [arg for dep in _local_dependencies(path) for arg in ("-e", str(dep))]
    _install(session, DEFAULT_TORCH, *local, *_requirement(path))
    _check_torch(session, DEFAULT_TORCH)
    _pytest(session, str(path))


def _requirements_beside_0_2() -> list[str]:
    """Every tsgu package but the drop-in (and the bundle that pulls it in): the drop-in
    would shadow a real torchsparsegradutils 0.2 installed beside it under the same name."""
    return [
        arg for pkg in _packages() if pkg.name not in ("tsgu", DROP_IN) for arg in _requirement(pkg)
    ]


def _install_peer_0_2(session: nox.Session, release: str) -> None:
    # --no-deps: 0.2's own requirements would move torch; it needs nothing we lack
    session.install("--no-deps", f"{DROP_IN}=={release}")


# The tests that compare tsgu with a torchsparsegradutils 0.2 release, and the release each
# needs. Where every package is installed, torchsparsegradutils is tsgu's own 0.3 drop-in
# path and these tests skip; this session installs the real release beside tsgu instead.
COMPAT_0_2 = {
    "0.2.2": "packages/tsgu-encoders/tests/test_compat_0_2.py",
    "0.2.5": "packages/tsgu-core/tests/test_logsumexp.py",
}


@nox.session
def compat(session: nox.Session) -> None:
    """tsgu against the torchsparsegradutils 0.2 releases it replaces, live, side by side."""
    _install(session, DEFAULT_TORCH, *_requirements_beside_0_2())
    _check_torch(session, DEFAULT_TORCH)
    for release, tests in COMPAT_0_2.items():
        _install_peer_0_2(session, release)
        session.run(
            "python",
            "-c",
            "import importlib.metadata as m, sys; v = m.version('torchsparsegradutils'); "
            f"sys.exit(0 if v == {release!r} else 'expected {release}, got ' + v)",
        )
        _pytest(session, tests, "-rs")


# The torchsparsegradutils 0.2 releases whose own test suites (shipped inside their wheels)
# run against the drop-in, and each wheel's sha256 (`pip hash`).
SUITES_0_2 = {
    "0.2.2": "a41bd48336b9efb04fb5fd42f39148c21e8e10024be4e4718f2d5e3cf873cde9",
    "0.2.7": "56d57312f0dcc446fe49973b745b72959947f0a4c3e73edb22ec1e0d19e0ab1b",
}
DROP_IN_TESTS = PACKAGES_DIR / "torchsparsegradutils" / "tests"


def _wheel_0_2(session: nox.Session, release: str) -> Path:
    """The release's wheel, downloaded once (pinned version and hash) into nox's cache."""
    folder = Path(session.cache_dir) / "torchsparsegradutils-wheels"
    wheel = folder / f"torchsparsegradutils-{release}-py3-none-any.whl"
    if not wheel.exists() or _sha256(wheel) != SUITES_0_2[release]:
        folder.mkdir(parents=True, exist_ok=True)
        pinned = Path(session.create_tmp()) / f"torchsparsegradutils-{release}.txt"
        pinned.write_text(f"torchsparsegradutils=={release} --hash=sha256:{SUITES_0_2[release]}\n")
        # pip (not uv, which has no download command) checks the hash against the pin
        session.run(
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
            "--only-binary", ":all:", "-r", str(pinned), "-d", str(folder),
            external=True,
        )  # fmt: skip
    if _sha256(wheel) != SUITES_0_2[release]:
        session.error(f"{wheel.name}: sha256 differs from the pinned {SUITES_0_2[release]}")
    return wheel


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extract_suite(wheel: Path, into: Path) -> None:
    """Only the wheel's ``torchsparsegradutils/tests/``: its package never reaches the path."""
    prefix = "torchsparsegradutils/tests/"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                target = into / "tests" / name[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))


@nox.session
def compat_suite(session: nox.Session) -> None:
    """torchsparsegradutils 0.2's own test suites (from its wheels) against the drop-in.

    Every tsgu package is installed (the drop-in included, no 0.2 release). Each release's
    ``tests/`` runs from a fresh folder outside the tree; the tests that fail for a stated
    reason are listed in packages/torchsparsegradutils/tests/expected_failures_0_2.txt.
    ``nox -s compat_suite -- 0.2.2`` runs one release; other arguments go to pytest.
    """
    requirements = [arg for pkg in _packages() for arg in _requirement(pkg)]
    _install(session, DEFAULT_TORCH, *requirements, "pyyaml")  # 0.2's tests read YAML
    _check_torch(session, DEFAULT_TORCH)
    releases = [arg for arg in session.posargs if arg in SUITES_0_2] or list(SUITES_0_2)
    pytest_args = [arg for arg in session.posargs if arg not in SUITES_0_2]
    results = {}
    for release in releases:
        wheel = _wheel_0_2(session, release)
        folder = Path(tempfile.mkdtemp(prefix=f"tsgu-suite-{release}-"))
        _extract_suite(wheel, folder)
        shutil.copy(DROP_IN_TESTS / "suite_0_2_plugin.py", folder / "conftest.py")
        # 0.2's tests import their helpers as top-level modules (`from test_config import`)
        (folder / "pytest.ini").write_text("[pytest]\npythonpath = tests\n")
        summary = folder / "summary.json"
        start = time.monotonic()
        with session.chdir(folder):
            session.run(
                "python", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                "--continue-on-collection-errors",
                f"--suite-release={release}",
                f"--expected-failures={DROP_IN_TESTS / 'expected_failures_0_2.txt'}",
                f"--drop-in-src={PACKAGES_DIR / 'torchsparsegradutils' / 'src'}",
                f"--suite-summary={summary}",
                *pytest_args,
                env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                success_codes=[0, 1],
            )  # fmt: skip
        if not summary.exists():
            session.error(f"the {release} suite stopped before reporting its counts")
        results[release] = {**json.loads(summary.read_text()), "s": time.monotonic() - start}
        shutil.rmtree(folder, ignore_errors=True)
    session.log("torchsparsegradutils 0.2 suites against the drop-in:")
    session.log("release  passed  failed  skipped  xfailed  xpassed  errors  seconds")
    for release, n in results.items():
        session.log(
            f"{release:<7} {n['passed']:>7} {n['failed']:>7} {n['skipped']:>8} {n['xfailed']:>8}"
            f" {n['xpassed']:>8} {n['error']:>7} {n['s']:>8.0f}"
        )
    bad = [r for r, n in results.items() if n["failed"] or n["xpassed"] or n["error"]]
    stale = [r for r, n in results.items() if n["stale_entries"]]
    if bad or stale:
        session.error(f"unexpected outcomes in {bad}, stale expected-failure entries in {stale}")


def _require_gpu(session: nox.Session, python: str | None = None) -> None:
    """Skip the session on a machine without a CUDA GPU."""
    if python is None:
        if shutil.which("nvidia-smi") is None:
            session.skip("no CUDA GPU on this machine (nvidia-smi not found)")
        return
    probe = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"
    if subprocess.run([python, "-c", probe], check=False).returncode != 0:
        session.skip(f"no CUDA GPU visible to {python}'s torch")


@nox.session
@nox.parametrize(("torch", "cuda"), CUDA_MATRIX)
def tests_cuda(session: nox.Session, torch: str, cuda: str) -> None:
    """On a GPU machine: the whole suite, CUDA tests included, on torch built for ``cuda``."""
    _require_gpu(session)
    index = ["--extra-index-url", f"https://download.pytorch.org/whl/{cuda}"]
    requirements = [arg for pkg in _packages() for arg in _requirement(pkg)]
    _install(session, torch, *requirements, *index)
    _check_torch(session, torch)
    session.run(
        "python", "-c", "import torch; assert torch.cuda.is_available(), torch.version.cuda"
    )
    _pytest(session, "packages")


@nox.session(venv_backend="none")
def tests_cuda_system(session: nox.Session) -> None:
    """On a GPU machine that cannot download: the suite on the interpreter's own torch.

    Uses ``$TSGU_PYTHON`` (default: the python running nox), which needs torch and pytest
    (numpy, scipy and jax for the packages that use them); the packages are taken from their
    source folders through PYTHONPATH, nothing is installed.
    """
    python = os.environ.get("TSGU_PYTHON", sys.executable)
    _require_gpu(session, python)
    src = os.pathsep.join(str(pkg / "src") for pkg in _packages() if (pkg / "src").exists())
    _pytest(session, "packages", python=python, env={"PYTHONPATH": src}, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """The namespace guard, ruff check, ruff format --check, mypy on every src/."""
    stray = sorted(str(p) for p in PACKAGES_DIR.glob("*/src/tsgu/__init__.py"))
    if stray:
        session.error(
            "tsgu is a PEP 420 namespace: remove "
            + ", ".join(stray)
            + " (one such file breaks every other tsgu package's import)"
        )
    requirements = [arg for pkg in _packages() for arg in _requirement(pkg)]
    _install(session, DEFAULT_TORCH, "ruff", "mypy", *requirements)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    sources = [str(pkg / "src") for pkg in _packages() if (pkg / "src").exists()]
    session.run("mypy", *sources)


@nox.session
def build(session: nox.Session) -> None:
    """Build every wheel and sdist; install each wheel alone in a fresh venv and run its tests.

    The tests run from a copy outside the source tree, so they see only what the wheel and
    its declared dependencies bring: this proves "install only the part you need".
    """
    # hatchling is hatch's build backend; calling it directly skips hatch's own build
    # environments, which add nothing here and once failed to provision on a fresh machine.
    session.install("hatchling")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for pkg in _packages():
        with session.chdir(pkg):
            session.run(
                "python",
                "-m",
                "hatchling",
                "build",
                "--target",
                "wheel",
                "--target",
                "sdist",
                "--directory",
                str(dist),
            )
    work = Path(tempfile.mkdtemp(prefix="tsgu-build-"))
    for pkg in _packages():
        wheel = _wheel_of(dist, pkg)
        venv = work / f"venv-{pkg.name}"
        session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv), external=True)
        python = str(venv / "bin" / "python")
        extra = "[test]" if _has_test_extra(pkg) else ""
        constraints = _constraints(session, DEFAULT_TORCH)
        if pkg.name == DROP_IN:
            # the upgrade users make: 0.3 installed over 0.2.2 must replace it cleanly
            session.run(
                "uv", "pip", "install", "--quiet", "--python", python, "--no-deps",
                f"{DROP_IN}==0.2.2", external=True,
            )  # fmt: skip
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            f"{wheel}{extra}",
            "pytest",
            f"torch=={DEFAULT_TORCH}",
            "--find-links",
            str(dist),
            *constraints,
            *_find_links(),
            external=True,
        )
        _check_torch(session, DEFAULT_TORCH, python=python)
        if pkg.name == DROP_IN:
            session.run(python, "-c", _REPLACED_0_2, external=True)
        tests_dir = pkg / "tests"
        if not tests_dir.exists():
            continue
        copy = work / f"tests-{pkg.name}"
        shutil.copytree(tests_dir, copy)
        session.run(
            python,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(copy),
            "-p",
            "no:cacheprovider",
            str(copy),
            external=True,
            env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
        )
    shutil.rmtree(work, ignore_errors=True)


DROP_IN = "torchsparsegradutils"

# 0.2.2's wheel holds tests/ and benchmarks/ inside the package; once 0.3 has replaced it,
# neither may be left behind, and the version must be ours.
_REPLACED_0_2 = """
import importlib.metadata, pathlib, torchsparsegradutils as t
root = pathlib.Path(t.__file__).parent
left = [p.name for p in (root / 'tests', root / 'benchmarks') if p.exists()]
assert not left, f'0.2.2 files left behind: {left}'
assert t.__version__ == importlib.metadata.version('torchsparsegradutils') == '0.3.0'
print('torchsparsegradutils 0.3.0 replaced 0.2.2 cleanly')
"""


def _wheel_of(dist: Path, pkg: Path) -> Path:
    stem = pkg.name.replace("-", "_")
    wheels = sorted(dist.glob(f"{stem}-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel for {pkg.name} in {dist}, found {wheels}")
    return wheels[0]


@nox.session
def docs(session: nox.Session) -> None:
    """The Sphinx site: gallery scripts first, then the build (warnings are errors), then the
    examples of the docstrings and of the pages as doctests.

    Each gallery script (``docs/gallery/*.py``) trains on the CPU and rewrites its figure and
    printed output under ``docs/gallery/figures/`` (committed); ``nox -s docs -- --no-gallery``
    builds with the committed ones. The build needs no network: intersphinx links are added
    only when their inventories can be fetched (see docs/conf.py). Output:
    docs/_build/html/index.html.
    """
    requirements = [arg for pkg in _packages() for arg in _requirement(pkg)]
    _install(session, DEFAULT_TORCH, "sphinx>=7", "myst-parser", "matplotlib", *requirements)
    _check_torch(session, DEFAULT_TORCH)
    # small tensors: OpenMP threads only add spin-wait overhead on a loaded machine
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg"}
    docs_dir = ROOT / "docs"
    if "--no-gallery" not in session.posargs:
        for script in sorted((docs_dir / "gallery").glob("[!_]*.py")):
            start = time.monotonic()
            session.run("python", str(script), env=env)
            elapsed = time.monotonic() - start
            session.log(f"{script.name}: {elapsed:.0f} s")
            if elapsed > 120:
                session.warn(f"{script.name} took {elapsed:.0f} s: the gallery promises < 2 min")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", env=env
    )
    sources = [str(pkg / "src") for pkg in _packages() if (pkg / "src").exists()]
    session.run("python", "-m", "pytest", "--doctest-modules", *sources, env=env)
    pages = sorted(
        str(page)
        for page in docs_dir.rglob("*.rst")
        if not {"_build", "_generated"} & set(page.relative_to(docs_dir).parts)
    )
    session.run("python", "-m", "pytest", "--doctest-glob=*.rst", *pages, env=env)


# The torchsparsegradutils 0.2 release each benchmark compares with (0.2.2 unless named).
# Benchmarks install tsgu without the drop-in, which would shadow it under the same name.
BENCH_PEER_0_2 = {"reductions.py": "0.2.5"}


def _bench_env(session: nox.Session) -> None:
    _install(session, DEFAULT_TORCH, "matplotlib", "tqdm", "scipy", *_requirements_beside_0_2())
    _check_torch(session, DEFAULT_TORCH)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark (or those named after --): tables, CSV in results/, PNG in plots/.

    The tsgu packages without the drop-in, beside the torchsparsegradutils 0.2 release each
    script compares with.
    """
    _bench_env(session)
    scripts = session.posargs or sorted(
        p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")
    )
    for script in scripts:
        _install_peer_0_2(session, BENCH_PEER_0_2.get(script, "0.2.2"))
        session.run("python", str(ROOT / "benchmarks" / script))


@nox.session
def demo(session: nox.Session) -> None:
    """The main demonstration: tsgu's sparse_mm against torch.sparse.mm, printed as a table."""
    _bench_env(session)
    session.run("python", str(ROOT / "benchmarks" / "sparse_mm.py"), "--demo", *session.posargs)
