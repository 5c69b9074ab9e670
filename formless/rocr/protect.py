"""Names whose representation an edit must leave as it is.

The null-space projector protects what generic text activates, and the statistics corpus holds no
famous entities, so nothing keeps an edit of "Albert Einstein" off "Isaac Newton": their name keys
share the directions generic text leaves free, and the lost neighbour facts are mostly same-kind
entities. Protected names enter the closed-form solve like the keys of earlier edits (AlphaEdit's
``K_prev``): the update is asked to map their keys to zero change.

``FAMOUS_NAMES`` is a broad list of well-known entities of every kind. It deliberately holds none of
the shipped knowledge base's concepts (whose facts the audit asks as neighbours), none of the
concepts the README measures outside the knowledge base, and no made-up name: a test keeps it so,
so that any neighbour kept thanks to it was kept by generalisation, not by protecting the very
concept that is then asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from formless.errors import FormlessError
from formless.matching import normalise
from formless.models.cache import atomic_file, read_tensors
from formless.models.loading import LoadedModel
from formless.rocr.activations import Located, collect

FORMAT = "formless-protected-keys-1"

FAMOUS_NAMES: tuple[str, ...] = (
    # people
    "Aristotle", "Plato", "Socrates", "Confucius", "Nikola Tesla", "Thomas Edison", "Stephen Hawking",
    "Alan Turing", "Ada Lovelace", "Johannes Kepler", "Nicolaus Copernicus", "Louis Pasteur",
    "Sigmund Freud", "Karl Marx", "Mahatma Gandhi", "Nelson Mandela", "Martin Luther King Jr.",
    "Winston Churchill", "Queen Victoria", "Cleopatra", "Attila the Hun", "Genghis Khan",
    "Christopher Columbus", "Neil Armstrong", "Joan of Arc", "Florence Nightingale", "Elvis Presley",
    "Madonna", "Bob Dylan", "Freddie Mercury", "Johann Sebastian Bach", "Frédéric Chopin",
    "Claude Monet", "Rembrandt", "Frida Kahlo", "Salvador Dalí", "Mark Twain", "Ernest Hemingway",
    "Leo Tolstoy", "Homer", "Dante Alighieri", "Agatha Christie", "Roger Federer", "Muhammad Ali",
    "Usain Bolt", "Pelé", "Serena Williams", "Tiger Woods", "Babe Ruth", "Diego Maradona",
    "Steve Jobs", "Bill Gates", "Walt Disney", "Charlie Chaplin", "Marilyn Monroe", "Oprah Winfrey",
    "Franklin D. Roosevelt", "John F. Kennedy", "Thomas Jefferson", "Tutankhamun",
    # places
    "Big Ben", "Machu Picchu", "Stonehenge", "Niagara Falls", "the Grand Canyon", "Kyoto",
    "the Sydney Opera House", "the Golden Gate Bridge", "the Louvre", "the Acropolis", "the Kremlin",
    "Buckingham Palace", "the Nile", "the Danube", "the Pacific Ocean", "Antarctica",
    "Venice", "Berlin", "Rome", "New York City", "Lake Titicaca", "the Dead Sea", "Yellowstone",
    "Angkor Wat", "Petra",
    # works and characters
    "The Odyssey", "Anna Karenina", "Don Quixote", "Moby-Dick", "The Hobbit", "Jurassic Park",
    "The Godfather", "Doctor Who", "The Simpsons", "Sherlock Holmes", "Batman", "Superman",
    "Mickey Mouse", "Pokémon", "The Matrix", "Frankenstein", "Game of Thrones", "The Little Prince",
    "Toy Story",
    # organisations
    "NASA", "the United Nations", "Apple", "Coca-Cola", "Nike", "FIFA", "the Red Cross", "Toyota",
    "Harvard University", "The Rolling Stones",
    # events and things (after a singer and before a character that replaced names sharing a word
    # with a shipped concept; the order is kept: it is the order the figures were measured in)
    "Beyoncé", "the Renaissance", "the Black Death", "the Bronze Age", "the Roman Empire",
    "the Internet", "DNA", "penicillin", "Peter Pan", "the telephone",
)  # fmt: skip

_FUNCTION_WORDS = frozenset({"the", "of", "and", "a", "an"})


def _words(name: str) -> set[str]:
    """A name's words but its function words: two names that share one share a token the edit may
    redirect ("Mount" in "Mount Fuji" and "Mount Everest")."""
    return {w for w in normalise(name).split() if w not in _FUNCTION_WORDS}


def protected_names(
    names: Iterable[str], concepts: Sequence[str], redirects: Sequence[str] = ()
) -> list[str]:
    """``names`` without any that shares a word (other than "the", "of", "and", "a", "an") with a
    concept being edited or a redirect target ("Michael Jackson" is dropped when "Michael Jordan" is
    edited, "Mount Fuji" when "Mount Everest" is): a protected key of the very token the edit
    redirects asks the solve for two things at once, and the update grows to give both (measured:
    Mount Everest's general facts 92/94 -> 88/94 with "Mount Fuji" protected). A name given twice
    (up to case, accents and punctuation) is kept once."""
    taken = set().union(*(_words(c) for c in [*concepts, *redirects]))
    out, seen = [], {normalise(c) for c in concepts}
    for name in (" ".join(str(n).split()) for n in names):
        if name and normalise(name) not in seen and not (_words(name) & taken):
            seen.add(normalise(name))
            out.append(name)
    return out


def _digest(model_hash: str, names: Sequence[str], groups: Sequence[str], layers: Sequence[int]) -> str:
    text = json.dumps([FORMAT, model_hash, list(names), list(groups), list(layers)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def protected_keys(
    loaded: LoadedModel,
    names: Sequence[str],
    keep: Iterable[str],
    groups: Sequence[str],
    layers: Sequence[int],
    place: Callable[[str, str], Located],
    cache: Path | None = None,
) -> dict[int, torch.Tensor]:
    """Keys (n x d_ff per layer) of every token of each of ``names`` that is in ``keep``, read in the
    bare-name context ``place(name, group)`` of each group; a name that cannot be placed there is
    skipped. With ``cache`` (a folder) the keys of all ``names`` are kept per model weights (the
    hash ``loaded`` last computed: ``forget`` computes it just before the edit), name list, groups
    and layers: they do not depend on the concept, and reading them costs ~5 s of one CPU core on
    SmolLM2-135M, more than the edit itself."""
    keep = set(keep)
    path = None
    if cache is not None:
        model_hash = loaded.weights_hash().split(":")[-1]
        path = (
            Path(cache)
            / "rocr-protect"
            / model_hash[:20]
            / f"{_digest(model_hash, names, groups, layers)}.safetensors"
        )
        found = _load(path, names, layers)
        if found is not None:
            return _select(*found, keep, layers)
    owners: list[str] = []
    items: list[Located] = []
    for name in names:
        for group in groups:
            try:
                located = place(name, group)
            except FormlessError:
                continue
            offsets = range(located.n_concept_tokens)
            items += [located.back(o) for o in offsets]
            owners += [name] * len(offsets)
    if not items:
        return {}
    keys = collect(loaded, items, key_layers=list(layers))[0]
    keys = {layer: k.cpu().contiguous() for layer, k in keys.items()}
    if path is not None:
        _save(path, keys, owners)
    return _select(keys, owners, keep, layers)


def _select(
    keys: dict[int, torch.Tensor], owners: Sequence[str], keep: set[str], layers
) -> dict[int, torch.Tensor]:
    rows = torch.tensor([i for i, name in enumerate(owners) if name in keep], dtype=torch.long)
    if not len(rows):
        return {}
    return {layer: keys[layer][rows] for layer in layers}


def _save(path: Path, keys: dict[int, torch.Tensor], owners: Sequence[str]) -> None:
    meta = {"format": FORMAT, "owners": json.dumps(list(owners))}
    with atomic_file(path) as tmp:
        save_file({f"layer_{layer}": k for layer, k in keys.items()}, str(tmp), metadata=meta)


def _load(path: Path, names: Sequence[str], layers: Sequence[int]):
    """(keys per layer, owner name per row) from the cache, or None when missing or failing a check
    (then recomputed and rewritten)."""
    if not path.exists():
        return None
    try:
        tensors, meta = read_tensors(path)
        owners = json.loads(meta.get("owners", "null"))
        keys = {layer: tensors[f"layer_{layer}"] for layer in layers}
        if (
            meta.get("format") == FORMAT
            and isinstance(owners, list)
            and set(owners) <= set(names)
            and all(k.ndim == 2 and k.shape[0] == len(owners) for k in keys.values())
        ):
            return keys, owners
    except Exception:  # unreadable: recomputed like a missing one
        pass
    return None
