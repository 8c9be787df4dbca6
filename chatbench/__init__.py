"""chatbench: will this chat-history schema stay fast and correct at real volume?

The package ties the pipeline stages together (settings, provisioning, CLI, sign-off); the stages
themselves live in the top-level packages ``schema``, ``loadgen``, ``benchmarks`` and ``reports``.
"""

from chatbench.errors import ChatbenchError
from chatbench.provision import Server, provision

__all__ = ["ChatbenchError", "Server", "provision"]
__version__ = "0.1.0"
