"""interlock.adapters: everything that touches the world.

The public API for embedding interlock in a service:

- ``Runtime`` (``Runtime.from_files`` / ``Runtime.from_catalog``, ``run``, ``arun``)
- ``tool`` (``@tool("name")``, ``@tool.dry_run("name")``) and ``ToolRegistry``
- approval gates: ``DenyAll``, ``RulesGate``, ``TerminalPrompt``, ``CallableGate``
- clocks: ``SystemClock``, ``FakeClock``
- ``Harness`` / ``HarnessConfig``: the seed's quick start on the same runtime
"""

from interlock.adapters.approvals import CallableGate, DenyAll, RulesGate, TerminalPrompt
from interlock.adapters.bootstrap import Runtime
from interlock.adapters.clocks import FakeClock, SystemClock
from interlock.adapters.compat import Harness, HarnessConfig
from interlock.adapters.registry import ToolRegistry, tool
from interlock.adapters.runner import RunObserver, RunResult

__all__ = [
    "CallableGate", "DenyAll", "FakeClock", "Harness", "HarnessConfig", "RulesGate", "RunObserver",
    "RunResult", "Runtime", "SystemClock", "TerminalPrompt", "ToolRegistry", "tool",
]
