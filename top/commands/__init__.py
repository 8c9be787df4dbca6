"""Subcommands of ``chatbench``: one module each (see ``chatbench.cli``)."""
