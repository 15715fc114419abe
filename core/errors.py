"""One error family. Every error a user can cause carries enough to act on."""

from __future__ import annotations

import attrs


class InterlockError(Exception):
    """Base of every error interlock raises on purpose."""


@attrs.frozen
class Problem:
    """One thing wrong with an input file: where, which field, what was expected."""

    file: str
    pointer: str  # JSON pointer, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = self.pointer or "(document)"
        return f"{self.file}: {where}: {self.message}"


class LoadError(InterlockError):
    """An input file is malformed. Carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidTransition(InterlockError):
    """A trigger that is not allowed in the record's current state.

    Raised before anything changes (h11's Rule: errors leave the state as it was).
    """

    def __init__(self, call_id: str, state: str, trigger: str, detail: str = "") -> None:
        self.call_id = call_id
        self.state = state
        self.trigger = trigger
        msg = f"call {call_id!r}: trigger {trigger!r} is not allowed in state {state!r}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class MachineDefinitionError(InterlockError):
    """The controller definition breaks a structural rule (checked when built)."""


class OrchestrationError(InterlockError):
    """An event that does not fit the orchestrator's state (unknown call, stale answer)."""


class ToolLoadError(InterlockError):
    """A tool implementation cannot be loaded or registered: a broken
    ``interlock.tools`` entry point, or two different implementations for one
    tool name. Names the distribution / module and entry point involved."""


class TemplateError(InterlockError, ValueError):
    """A template (``"file:{path}"``) that cannot be parsed: unclosed ``{``, stray ``}``, ``{}``."""

    def __init__(self, text: str, position: int, message: str) -> None:
        self.text = text
        self.position = position
        super().__init__(f"template {text!r}, position {position}: {message}")
