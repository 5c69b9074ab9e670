"""formless: form-independent unlearning for Hugging Face language models."""

__version__ = "0.1.0"

from pathlib import Path  # noqa: E402

DATA_DIR = Path(__file__).parent / "data"

from formless.api import ForgetOutcome, forget, undo  # noqa: E402

__all__ = ["ForgetOutcome", "__version__", "forget", "undo"]
