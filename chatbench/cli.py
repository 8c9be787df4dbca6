"""The ``chatbench`` command: subcommands are the modules of ``chatbench.commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Exit codes: 0 success / PASS, 1 ran but the verdict is FAIL, 2 usage or environment error (one line on
stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from chatbench import __version__, commands
from chatbench.errors import ChatbenchError
from chatbench.provision import BACKENDS

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(
            f"chatbench {self.prog.split(' ', 1)[-1] if ' ' in self.prog else ''}: {message} (see --help)".replace(
                "  ", " "
            ),
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)


def server_options() -> argparse.ArgumentParser:
    """Options every server-using command accepts (before or after the subcommand)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server")
    group.add_argument(
        "--backend", default=None, help=f"where the server comes from: {' | '.join(BACKENDS)} (default auto)"
    )
    group.add_argument(
        "--pg-bin", default=None, help="PostgreSQL bin dir for --backend local (default: embedded wheel)"
    )
    group.add_argument("--image", default=None, help="container image for --backend container")
    group.add_argument(
        "--dsn", default=None, help="existing server; chatbench creates and drops its own database there"
    )
    group.add_argument(
        "--use-dsn-database",
        action="store_true",
        help="work in the DSN's own database instead of creating one (read-only unless --allow-destructive)",
    )
    group.add_argument(
        "--allow-destructive", action="store_true", help="allow seeding/dropping in a database chatbench did not create"
    )
    return parent


def command_modules() -> list[ModuleType]:
    found = [
        importlib.import_module(f"chatbench.commands.{info.name}") for info in pkgutil.iter_modules(commands.__path__)
    ]
    return sorted((m for m in found if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chatbench", description="Benchmark and sign-off harness for the chat-history schema.")
    parser.add_argument("--version", action="version", version=f"chatbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in command_modules():
        parents = [server_options()] if getattr(module, "USES_SERVER", False) else []
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.__doc__, parents=parents  # type: ignore[arg-type]
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except ChatbenchError as exc:
        print(f"chatbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"chatbench {args.command}: interrupted; cleaned up", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if isinstance(exc.code, int) and exc.code >= 128:
            print(f"chatbench {args.command}: terminated by signal {exc.code - 128}; cleaned up", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
