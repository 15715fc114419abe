"""The ``interlock`` command line: one dispatcher, one module per command.

Exit codes (SPEC section 11): 0 every call ended as planned; 1 some call
failed, was rejected, cancelled or rolled back; 2 invalid input (nothing ran);
3 the environment failed or an internal error. No traceback reaches a user
unless ``INTERLOCK_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from interlock.core.errors import InterlockError, LoadError

EXIT_OK, EXIT_PROBLEMS, EXIT_INPUT, EXIT_ENV = 0, 1, 2, 3

#: Command modules, in --help order. Each has ``register(subparsers)`` which adds
#: its parser with ``set_defaults(func=run)``; ``run(args) -> int``.
COMMAND_MODULES = [
    "run", "validate", "diagram", "replay", "verify_log", "verify", "resume", "resolve",
    "lock", "report", "tune", "feedback", "export",
]


class EnvironmentProblem(InterlockError):
    """The environment failed: unwritable output, corrupt or locked store, full disk. Exit 3."""


class UsageProblem(InterlockError):
    """A bad argument or input file the user can fix. Exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: exit 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="interlock",
        description="A safety interlock between AI agents and the tools they call.",
        epilog="Example: interlock run --catalog catalog.yaml --plans plans.yaml --policy policy.yaml --out runs/r1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"interlock.adapters.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"interlock.adapters.cmd_{name}":
                raise
            continue
        mod.register(subs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    try:
        return int(args.func(args))
    except LoadError as exc:
        print(f"interlock: invalid input ({len(exc.problems)} problem(s)); nothing was run:", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return EXIT_INPUT
    except UsageProblem as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except EnvironmentProblem as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return EXIT_ENV
    except KeyboardInterrupt:
        print("interlock: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"interlock: the environment failed: {exc}", file=sys.stderr)
        return EXIT_ENV
    except InterlockError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return EXIT_ENV
    except Exception:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("INTERLOCK_DEBUG"):
            traceback.print_exc()
        else:
            print("interlock: internal error (a bug); rerun with INTERLOCK_DEBUG=1 for details",
                  file=sys.stderr)
        return EXIT_ENV


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
