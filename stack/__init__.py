"""The embedded default stack: Temporal dev server, S3 API, Varnish edge,
Prometheus, worker and API as local child processes (`python -m stack run`)."""

from stack.embedded import ALL_COMPONENTS, EmbeddedStack, StackPorts
from stack.processes import ManagedProcess, StackError, free_port, wait_until

__all__ = [
    "ALL_COMPONENTS",
    "EmbeddedStack",
    "ManagedProcess",
    "StackError",
    "StackPorts",
    "free_port",
    "wait_until",
]
