"""Facts to forget and to keep: the shipped knowledge base and users' own files."""

from formless.knowledge.base import KnowledgeBase, KnowledgeError, build, builtin, load, parse_file
from formless.knowledge.schema import BLANK, Concept, Fact, Hop, KnowledgeFile, Translation


def load_facts() -> tuple[dict[str, Concept], tuple[Fact, ...]]:
    """(concepts by name, general facts) of the shipped knowledge base."""
    kb = builtin()
    return kb.concepts, kb.general


__all__ = [
    "BLANK",
    "Concept",
    "Fact",
    "Hop",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeFile",
    "Translation",
    "build",
    "builtin",
    "load",
    "load_facts",
    "parse_file",
]
