"""Subcommands of ``chatbench``: each is an interface here and an implementation in ``impl`` (see ``chatbench.cli``).

``chatbench.commands.<name>`` is the command's interface: its module docstring (the parser's description),
``NAME``, ``HELP``, ``SETTINGS`` and optionally ``add_arguments(parser)``, importing nothing heavier than
``chatbench.settings``. ``chatbench.commands.impl.<name>`` is what running it does, ``run(settings, args)``,
with the stack it needs (provisioning, SQLAlchemy, psycopg, numpy: about a second to import). Split so that
``chatbench COMMAND --help`` builds the command's parser from the interface alone, as fast as
``chatbench --help``; ``tests/test_cli_startup.py`` holds every command to it.

The other modules here (``appqueries``, ``schema_choice``, ``_common``) are what the implementations, the
pytest plugin and ``chatbench.testing`` share; they import the stack too.
"""
