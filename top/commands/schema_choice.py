"""Which schema a run judges the database against, and how: ``--models`` and ``--drift-mode`` resolved once.

Every stage that builds, seeds or verifies a schema reads the same ``SchemaChoice``: ``verify``,
``seed``, ``signoff``, ``rehearse`` and the pytest fixtures call ``schema_choice`` before any server
starts, so a ``--models`` that does not import, names no ``MetaData`` or declares no table is one
line and exit 2, and the commands hand its package and mode to the stages in their frozen options
(``SignoffOptions``, ``RehearsalPlan``).

The mode ``auto`` follows where the database's schema comes from:

- chatbench builds it from the models (the canonical ones, or ``--models``): ``exact``, the database
  must equal the models (the canonical schema's own CI);
- the application builds it (``--schema-from``, ``--schema-from-cmd``), it already exists (``--url``)
  or a release's migration produces it (``--migration``, ``--migration-cmd``): ``contract``, the
  database must give everything the canonical queries and behaviours rely on, extras judged by what
  they do;
- ``--models`` names the schema the application declares: ``exact`` against those models whatever
  built the database (what ``alembic check`` does, by meaning rather than spelling); the canonical
  contracts are still judged, by the verifier, in contract mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbench.schema.package import canonical, load_models
from chatbench.settings import DriftMode, Settings, env_var, option, read_file

if TYPE_CHECKING:
    from chatbench.schema.package import SchemaPackage

APPLICATION_BUILT = ("schema_from", "schema_from_cmd", "url", "migration", "migration_cmd")
"""Settings that mean the application (or a release) built the schema, not chatbench from the models."""


@dataclass(frozen=True)
class SchemaChoice:
    """The schema the database must equal or serve, and the drift mode that judges it."""

    package: SchemaPackage
    mode: DriftMode
    models: str | None  # the --models reference, None for the canonical models

    @property
    def source(self) -> str:
        """How reports name the expected schema."""
        return "the canonical models" if self.models is None else f"--models {self.models}"


def schema_choice(settings: Settings, *, spelling: Callable[[str], str] = option) -> SchemaChoice:
    """The package (``--models`` imported and checked, or the canonical one) and the resolved drift mode.

    ``spelling`` names an argument in errors the way its command line spells it (``--models``;
    pytest: ``--chatbench-models``).
    """
    if settings.models is None:
        package = canonical()
    else:
        package = load_models(settings.models, setting=_named(settings, "models", spelling))
    return SchemaChoice(package, drift_mode(settings), settings.models)


def drift_mode(settings: Settings) -> DriftMode:
    """``--drift-mode``, with ``auto`` resolved from where the schema comes from (module docstring)."""
    if settings.drift_mode == "auto":
        built_elsewhere = settings.models is None and any(getattr(settings, n) is not None for n in APPLICATION_BUILT)
        return "contract" if built_elsewhere else "exact"
    return "contract" if settings.drift_mode == "contract" else "exact"


def _named(settings: Settings, name: str, spelling: Callable[[str], str]) -> str:
    """The setting as the user gave it, without its value (the package loader quotes the value itself)."""
    source = settings.source(name)
    if source == "environment":
        return env_var(name)
    if source == "file":
        return f"{read_file().label} {name}"
    return spelling(name)
