"""Start a throwaway PostgreSQL server, print its URL and keep it until Ctrl-C or SIGTERM.

The URL goes to stdout alone, as the first line, in the plain ``postgresql://`` form that psql,
libpq and psycopg accept (``psql "$(head -1 server.url)"``); the status lines go to stderr. A
throwaway server's URL holds its password (local: none, trust on loopback; container: the
container's throwaway one). A ``--dsn`` server's never does: it is the one you gave, and the line on
stderr says where it came from.
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "server"
HELP = "start a throwaway server, print its postgresql:// URL and keep the server until Ctrl-C"
SETTINGS = (*SERVER_SETTINGS, "apply_schema")
