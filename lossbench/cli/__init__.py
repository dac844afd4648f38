"""The `lossbench` command line: parse options, call the library, print. No ML logic here."""

from __future__ import annotations

import contextlib
import errno
import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer

from lossbench._version import __version__

# the commands, registered on `common.app` in the order `lossbench --help` lists them
from lossbench.cli import common, dataset, experiments, results  # noqa: F401
from lossbench.cli.common import app
from lossbench.errors import InputError
from lossbench.settings import RULES, check_setting

__all__ = ["app", "main", "run_main"]


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """TensorFlow's first import, whenever a command reaches it, with its C++ start-up chatter
    (absl/oneDNN notices) kept off stderr: the import's loader runs with file descriptor 2 on
    /dev/null. A finder rather than an import up front, so that a command prepares its data
    before TensorFlow is loaded (about 0.8 GB resident) and the two never add up (issue 35)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            loud = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                with _stderr_to_devnull():
                    loud(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 on /dev/null inside the block (no-op without a real stderr)."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (e.g. captured by a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_tensorflow_import() -> None:
    """TensorFlow's import, when a command comes to it, without its start-up chatter."""
    if "tensorflow" in sys.modules or any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def _bare_mlflow(args: list[str]) -> list[str]:
    """`--mlflow` with no URI after it (the last word, or another option next) means the default
    store: Click options take a value, so the default is written in."""
    if "--mlflow" not in args:
        return args
    from lossbench.tracking import DEFAULT

    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--mlflow" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(DEFAULT)
    return out


def _usage_message(exc: typer.TyperException, args: list[str]) -> str:
    """One line for a usage error, naming the option and the value given when there is one; a
    value outside an option's choices gets the settings edge's message (as from a TOML file)."""
    msg = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and getattr(param, "opts", None):
        value = None
        for i, arg in enumerate(args):
            for name in param.opts:
                if arg == name and i + 1 < len(args):
                    value = args[i + 1]
                elif arg.startswith(name + "="):
                    value = arg.split("=", 1)[1]
        rule = RULES.get(param.name or "")
        if value is not None and rule is not None and rule.kind == "choice":
            try:
                check_setting(param.name, value)
            except InputError as bad:
                return str(bad)
        if value is not None:
            msg = f"{param.opts[0]} {value!r}: {' '.join(exc.message.split())}"
    path = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "lossbench"
    return f"{msg} (see `{path} --help`)"


#: errno values of an environment the user can fix (permissions, a read-only or full disk).
_ENVIRONMENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EMFILE,
}


def _quiet_libraries() -> None:
    """Keep TensorFlow's, Ray's and MLflow's own log lines (C++ notices, retracing warnings,
    database set-up) off stderr."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO lines from --mlflow
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _crash_log(exc: BaseException) -> str:
    """Write the traceback of an internal error to a log file; returns its path."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    fd, path = tempfile.mkstemp(prefix="lossbench-error-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"lossbench {__version__}: {' '.join(sys.argv)}\n{text}")
    return path


def _fail(message: str) -> None:
    common.err_console.print(
        f"[red]error:[/red] {' '.join(message.split())}", highlight=False, soft_wrap=True
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point and its exit codes: 0 success; 2 bad input or environment (one
    line on stderr); 3 `run`/`compare` finished but a run failed; 1 an internal error (a bug:
    one line on stderr, the traceback in a log file)."""
    args = list(sys.argv[1:] if argv is None else argv)
    common.ARGV[:] = args
    args = _bare_mlflow(args)
    common.reset_consoles()  # the terminal's width now
    verbose = "--verbose" in args[: args.index("--")] if "--" in args else "--verbose" in args
    if verbose:
        args = [a for a in args if a != "--verbose"]
    else:
        _quiet_libraries()
    if not verbose and args and args[0] in ("run", "compare", "bench"):
        _quiet_tensorflow_import()
    try:
        result = app(args=args, prog_name="lossbench", standalone_mode=False)
    except InputError as exc:
        _fail(str(exc))
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        common.err_console.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, bad value type, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # as Typer tells it (no public name)
            exc.show()
            return 0
        _fail(_usage_message(exc, args))
        return 2
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            return _internal_error(exc, verbose)
        where = exc.filename or ""
        _fail(f"{where}: {exc.strerror or exc}" if where else f"{exc.strerror or exc}")
        return 2
    except Exception as exc:
        return _internal_error(exc, verbose)
    return result if isinstance(result, int) else 0


def _internal_error(exc: Exception, verbose: bool) -> int:
    """A bug: one line on stderr naming the log file that holds the traceback; exit code 1."""
    try:
        where = f"traceback in {_crash_log(exc)}"
    except OSError:
        where = "traceback below"
        verbose = True
    if verbose:
        import traceback

        traceback.print_exception(exc)
    _fail(f"internal error (a bug in lossbench): {type(exc).__name__}: {exc} ({where})")
    return 1


def run_main() -> None:  # pragma: no cover
    from lossbench.malloc import limit_arenas

    limit_arenas()  # before TensorFlow's threads start: see lossbench.malloc
    sys.exit(main())
