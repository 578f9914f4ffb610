"""Sessions: tests, tutorial (the main job), lint, mypy, bench.

Each session installs what it needs into its own virtualenv, so that
``pip install nox && nox -s tests`` works on a fresh machine.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "mypy", "tests"]
nox.options.reuse_existing_virtualenvs = True

# the interpreter nox itself runs on (any Python 3.11+): no other one needs to be installed
PYTHON = None


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, against real S3 and GCS servers it starts itself."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def tutorial(session: nox.Session) -> None:
    """The main job: the example flow on a local repository."""
    session.install("-e", ".[tutorial]")
    session.run("python", "examples/tutorial.py", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def mypy(session: nox.Session) -> None:
    """mypy --strict over src/hangar."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: tables comparing hangar with plain fsspec and with zarr, in one run."""
    session.install("-e", ".[bench]")
    session.run("python", "bench/bench_store.py", *session.posargs)
    session.run("python", "bench/bench_tutorial.py")
    session.run("python", "bench/bench_history.py")
