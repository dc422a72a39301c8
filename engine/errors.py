"""The engine's error tree.

    PatchwireError
    ├── GraphError            a graph that cannot be saved or run (carries ``problems``)
    ├── ConfigError           a node config that does not fit its schema (carries ``field_errors``)
    ├── RegistryError         unknown or duplicate node type
    ├── ExpressionError       a ``{{ }}`` expression failed to compile or evaluate
    │   └── ExpressionBudgetExceeded   it would exceed its budget (size, steps, time); never retried
    ├── ExecutionTimeout      the whole execution exceeded its time limit
    ├── CredentialError       a stored credential cannot be used (docs/credentials.md)
    │   ├── CredentialKeyMissing      sealed with a key the key ring does not hold
    │   ├── CredentialSealBroken      its ciphertext was altered or belongs to another row, owner or type
    │   ├── CredentialNotFound        no such credential for this owner
    │   ├── CredentialInUse           deleting it is refused: workflows use it (carries ``workflows``)
    │   ├── CredentialTypeMismatch    a node was given a credential of a type it does not accept
    │   ├── CredentialNeedsReconnect  the provider refused its OAuth grant: the user must reconnect
    │   └── CredentialKeyError        start-up: a malformed key setting, or keys that cannot open the store
    ├── WorkflowPaused        the circuit breaker paused the workflow's automatic triggers
    └── NodeError             a node's own code failed; stored on the node run, never swallowed
        └── NodeTimeout       the node exceeded its time limit
"""

from __future__ import annotations

from typing import Any


class PatchwireError(Exception):
    """Base of every error the engine raises on purpose."""


class RegistryError(PatchwireError):
    pass


class GraphError(PatchwireError):
    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class ConfigError(PatchwireError):
    def __init__(self, field_errors: dict[str, str]) -> None:
        self.field_errors = field_errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in field_errors.items()))


class ExpressionError(PatchwireError):
    def __init__(self, message: str, *, expression: str = "", field: str = "") -> None:
        self.expression = expression
        self.field = field
        where = f" in field '{field}'" if field else ""
        super().__init__(f"{message}{where}: {expression}" if expression else f"{message}{where}")


class ExpressionBudgetExceeded(ExpressionError):
    """An expression would have exceeded a limit of its budget (engine/expressions/budget.py); the
    message names the limit. Deterministic, so never retried."""

    retryable = False


class NodeError(PatchwireError):
    """Raised by node code for an expected failure (bad response, invalid data, …)."""

    def __init__(self, message: str, *, data: dict[str, Any] | None = None, kind: str | None = None,
                 retry_after: float | None = None) -> None:
        self.data = data or {}
        self.kind = kind  # network | timeout | 429 | 5xx | 4xx (engine.policy decides what retries)
        self.retry_after = retry_after
        super().__init__(message)


class NodeTimeout(NodeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, kind="timeout")


class WorkflowPaused(PatchwireError):
    """The circuit breaker paused the workflow: automatic triggers may not start it now."""

    def __init__(self, workflow_id: int, until: Any) -> None:
        self.workflow_id, self.until = workflow_id, until
        super().__init__(f"workflow {workflow_id} is paused by its circuit breaker until {until:%Y-%m-%d %H:%M} UTC")


class ExecutionTimeout(PatchwireError):
    """The whole execution ran past its time limit."""


class CredentialError(PatchwireError):
    """A stored credential cannot be used; the message says why and never holds a secret."""


class CredentialKeyMissing(CredentialError):
    def __init__(self, credential_id: int | None, key_id: str) -> None:
        self.credential_id, self.key_id = credential_id, key_id
        super().__init__(f"credential {credential_id} was sealed with key {key_id!r}, "
                         "which PATCHWIRE_CREDENTIALS_KEY does not hold")


class CredentialSealBroken(CredentialError):
    def __init__(self, credential_id: int | None) -> None:
        self.credential_id = credential_id
        super().__init__(f"credential {credential_id} cannot be opened: its ciphertext was altered or "
                         "belongs to another row, owner or type")


class CredentialNotFound(CredentialError):
    def __init__(self, credential_id: Any) -> None:
        self.credential_id = credential_id
        super().__init__(f"credential {credential_id} not found")


class CredentialInUse(CredentialError):
    """Deleting is refused while workflows name the credential; ``workflows`` is ``[(id, name), …]``."""

    def __init__(self, credential_id: int, workflows: list[tuple[int, str]]) -> None:
        self.credential_id, self.workflows = credential_id, workflows
        names = ", ".join(repr(name) for _, name in workflows)
        super().__init__(f"credential {credential_id} is used by {len(workflows)} workflow"
                         f"{'s' if len(workflows) != 1 else ''}: {names}")


class CredentialTypeMismatch(CredentialError):
    pass


class CredentialNeedsReconnect(CredentialError):
    """The provider refused the credential's grant (revoked, expired): its owner must reconnect it."""

    retryable = False


class CredentialKeyError(CredentialError):
    """Start-up: the key setting is malformed, or the keys cannot open the stored credentials."""
