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

from collections.abc import Iterable, Sequence

from formless.matching import normalise

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
    # events and things
    "Beyoncé", "the Renaissance", "the Black Death", "the Bronze Age", "the Roman Empire",
    "the Internet", "DNA", "penicillin", "Peter Pan", "the telephone",
)  # fmt: skip

_FUNCTION_WORDS = frozenset({"the", "of", "and", "a", "an"})


def _words(name: str) -> set[str]:
    """A name's words but its function words: two names that share one share a token the edit may
    redirect ("Mount" in "Kyoto" and "Mount Everest")."""
    return {w for w in normalise(name).split() if w not in _FUNCTION_WORDS}


def protected_names(
    names: Iterable[str], concepts: Sequence[str], redirects: Sequence[str] = ()
) -> list[str]:
    """``names`` without any that shares a word (other than "the", "of", "and", "a", "an") with a
    concept being edited or a redirect target ("Michael Jackson" is dropped when "Michael Jordan" is
    edited, "Kyoto" when "Mount Everest" is): a protected key of the very token the edit
    redirects asks the solve for two things at once, and the update grows to give both (measured:
    Mount Everest's general facts 92/94 -> 88/94 with "Kyoto" protected). A name given twice
    (up to case, accents and punctuation) is kept once."""
    taken = set().union(*(_words(c) for c in [*concepts, *redirects])) if concepts or redirects else set()
    out, seen = [], {normalise(c) for c in concepts}
    for name in (" ".join(str(n).split()) for n in names):
        if name and normalise(name) not in seen and not (_words(name) & taken):
            seen.add(normalise(name))
            out.append(name)
    return out
