"""formless: form-independent unlearning for Hugging Face language models."""

__version__ = "0.1.0"

from formless.api import ForgetOutcome, forget, undo  # noqa: E402

__all__ = ["ForgetOutcome", "__version__", "forget", "undo"]
