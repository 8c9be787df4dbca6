"""The ``chatbench`` command: subcommands are the modules of ``chatbench.commands``.

Each command's interface, ``chatbench.commands.<name>``, defines ``NAME``, ``HELP``, ``SETTINGS`` (the
names of the settings it takes, declared once in ``chatbench.settings``) and optionally
``add_arguments(parser)`` for positional arguments; its implementation, ``chatbench.commands.impl.<name>``,
defines ``run(settings, args) -> int`` and is imported only to run the command, so ``COMMAND --help`` loads
none of its stack. The options themselves are built here from the declarations, so a command cannot spell,
default or check a setting differently from another.

Exit codes: 0 success / PASS, 1 ran but the verdict is FAIL, 2 usage or environment error (one line on
stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from chatbench import __version__, commands
from chatbench.errors import ChatbenchError
from chatbench.settings import DECLARATIONS, MACHINE_SETTINGS, Settings, default, env_var, option, resolve

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        name = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        print(f"chatbench{' ' + name if name else ''}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _help(name: str, command: str) -> str:
    spec = DECLARATIONS[name]
    value = default(name, command)
    shown = ",".join(value) if isinstance(value, tuple) else value
    parts = [spec.help.replace("%", "%%")]
    if spec.choices:
        parts.append(f"one of {' | '.join(spec.choices)}")
    if spec.kind != "bool" and shown not in (None, ""):
        parts.append(f"default {shown}")
    parts.append(f"env {env_var(name)}" + (f"={str(spec.negated is False).lower()}" if spec.kind == "bool" else ""))
    return "; ".join(parts)


def _metavar(name: str) -> str:
    spec = DECLARATIONS[name]
    return spec.metavar or {"int": "N", "float": "X"}.get(spec.kind, name.upper())


def add_setting(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, command: str) -> None:
    """One option from its declaration; the raw value is parsed and checked by ``settings.resolve``."""
    spec = DECLARATIONS[name]
    flag = option(name)
    if spec.kind == "bool":
        parser.add_argument(flag, dest=name, action="store_const", const=not spec.negated, default=None,
                            help=_help(name, command))
    elif spec.kind == "list":
        parser.add_argument(flag, dest=name, action="append", default=None, metavar=_metavar(name),
                            help=_help(name, command) + " (repeatable, or comma-separated)")
    else:
        parser.add_argument(flag, dest=name, default=None, metavar=_metavar(name),
                            help=_help(name, command))


def command_modules() -> list[ModuleType]:
    found = [importlib.import_module(f"chatbench.commands.{entry.module}") for entry in command_entries()]
    return sorted((m for m in found if hasattr(m, "NAME")), key=lambda m: m.NAME)


@dataclass(frozen=True)
class CommandEntry:
    """A command as the top-level help lists it, read from its module's source without importing it."""

    name: str  # the module's NAME
    help: str  # the module's HELP
    module: str  # its module name in chatbench.commands


def command_entries() -> list[CommandEntry]:
    """Every command interface's ``NAME`` and ``HELP``, read from the source (literal assignments).

    Why not import them: ``chatbench --version`` or ``--help`` needs no command module at all. Only the
    interface of the command being run (or whose help is asked) is imported, and its implementation
    (the whole stack, about a second) only to run it (``implementation``).
    """
    entries = []
    for info in pkgutil.iter_modules(commands.__path__):
        source = Path(commands.__path__[0]) / f"{info.name}.py"
        if info.ispkg or not source.is_file():
            continue
        constants = {
            target.id: node.value.value
            for node in ast.parse(source.read_text(encoding="utf-8")).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and target.id in ("NAME", "HELP")
        }
        if isinstance(constants.get("NAME"), str):
            entries.append(CommandEntry(str(constants["NAME"]), str(constants.get("HELP", "")), info.name))
    return sorted(entries, key=lambda entry: entry.name)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser from the commands' interfaces; with ``only``, the other commands are listed (name and
    help) but not imported."""
    parser = _Parser(prog="chatbench", description="Benchmark and sign-off harness for the chat-history schema.")
    parser.add_argument("--version", action="version", version=f"chatbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for entry in command_entries():
        if only is not None and entry.name != only:
            sub.add_parser(entry.name, help=entry.help)
            continue
        module = importlib.import_module(f"chatbench.commands.{entry.module}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        if hasattr(module, "add_arguments"):
            module.add_arguments(command)
        group = command.add_argument_group("settings (also from the environment, chatbench.toml or "
                                           "[tool.chatbench] in pyproject.toml)")
        for name in module.SETTINGS:
            add_setting(group, name, module.NAME)
        command.set_defaults(_module=module)
    return parser


def implementation(module: ModuleType) -> ModuleType:
    """The module that runs the command whose interface is ``module``: ``chatbench.commands.impl.<its name>``.

    Imported only when the command runs: it imports the command's whole stack (provisioning, SQLAlchemy,
    psycopg, numpy), 1-2 s, which the command's ``--help`` (0.1 s) does not need.
    """
    name = module.__name__.rpartition(".")[2]
    return importlib.import_module(f"chatbench.commands.impl.{name}")  # lazy: start-up, 1-2 s on COMMAND --help


def _command_named(argv: Sequence[str]) -> str:
    """The command in ``argv`` (its first word that is not an option; the top level takes no values),
    or "" when there is none: ``--version`` and ``--help`` then import no command module."""
    return next((word for word in argv if not word.startswith("-")), "")


def settings_for(module: ModuleType, args: argparse.Namespace) -> Settings:
    """The command's settings from its arguments, environment and file, each checked."""
    given = {name: getattr(args, name, None) for name in module.SETTINGS}
    machine = tuple(name for name in MACHINE_SETTINGS if name not in module.SETTINGS)
    return resolve(module.NAME, given, names=(*module.SETTINGS, *machine))  # a bad machine setting too, up front


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_named(argv))
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return EXIT_USAGE
    from chatbench.provision import terminate_as_exit  # lazy: start-up, +0.3 s on --version/--help's 0.1 s

    try:
        with terminate_as_exit():  # SIGTERM/SIGHUP unwind like Ctrl-C: teardown and cleanup run, at any stage
            settings = settings_for(module, args)  # a bad setting: one line, before the implementation is imported
            return int(implementation(module).run(settings, args))
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
