"""What each command does when it runs: ``run(settings, args) -> int`` in a module named as its interface.

``chatbench.commands.signoff`` declares the sign-off's options and help; ``chatbench.commands.impl.signoff``
runs it. ``chatbench.cli`` imports the implementation only to run the command: it imports the command's whole
stack, which ``--help`` does not need (``chatbench.commands``).
"""
