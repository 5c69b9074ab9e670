"""User-facing errors.

Every problem a user can fix (bad input, missing package, unsupported model) is raised as a
``FormlessError`` whose message says what was wrong and what to do. The CLI prints the message
on one line and exits non-zero instead of showing a traceback from deep inside torch.
"""


class FormlessError(Exception):
    """An error the user can act on; its message is shown as is."""


class ConceptNotFoundError(FormlessError):
    """The concept's tokens could not be located in a prompt."""


class UnsupportedArchitectureError(FormlessError):
    """No architecture adapter knows where this model keeps its MLP projections."""
