"""Relation templates for eliciting what a model knows about a concept of a given kind.

Each relation is asked in three forms: a chat ``question``, a plain ``completion`` the answer
continues, and a second plain wording (``cloze``: that wording followed by ``___`` is the fact's
cloze statement). ``{n}`` stands for the concept's name, ``{a}`` for the answer. The tables only
hold wordings; which answers count is decided by the model's own agreement across the forms
(see :mod:`formless.knowledge.elicit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# a free description of the concept, mined for statements and used to detect its kind
DESCRIPTION_PROMPT = "Tell me about {n}."
# a short answer to this names the concept's category ("a British novelist"): it helps detect the kind
IDENTITY_PROMPT = "Who or what is {n}?"
# names of no one: what a model says of them is its prior, not knowledge (elicitation controls, the
# audit's prior twins of recognition probes)
MADE_UP_NAMES = ("Velmora Strunkett", "Quillan Drexbury")
# the first plain completion of every kind: its answer is the concept's category ("singer", "city")
CATEGORY_COMPLETION = "{n} is a"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


KINDS = ("person", "work", "place", "organisation", "thing", "event")
# the languages the audit's cross-lingual form asks in, and elicitation translates into
LANGUAGES = ("fr", "es", "de")

_CAP = r"((?:[A-Z][\w'.&-]*|\d{4})(?:,? (?:of |the |de |von |van |and |& )?(?:[A-Z][\w'.&-]*|\d{4})){0,4})"
_YEAR = r"((?:1[0-9]|20)\d\d)"
_GENRES = r"(rock(?: and roll)?|pop|jazz|punk|heavy metal|metal|folk|soul|hip hop|blues|disco|reggae|grunge)"
_CENTURY = r"\b\d{1,2}(?:st|nd|rd|th)\b"
_PHRASE = r"((?:[\w'-]+ ){0,3}[\w'-]+)"


@dataclass(frozen=True)
class Relation:
    name: str
    question: str  # chat question, asked and stored as the fact's question
    paraphrase: str  # a second question wording (the paraphrase form; not asked while eliciting)
    completion: str  # plain text continued by the answer
    cloze: str  # a second plain wording; ``cloze + " ___."`` is the cloze statement
    generic: bool = False  # answers are categories ("actor"): no reverse question, head-noun alias
    reverse: str | None = None  # a question whose answer is the concept ({a} = the answer)
    describe: str | None = None  # phrase describing the concept by this fact ("born in {a}")
    role: str | None = None  # "the author of {n}": the answer reached through the concept
    mine: tuple[str, ...] = ()  # regexes over the free description; group 1 is the answer
    similar: tuple[str, ...] = ()  # knowledge-base relations with the same kind of answer
    fallback: tuple[str, ...] = ()  # distractors when too few other answers are known
    year: bool = False  # a year: candidates must hold one, distractors are nearby years
    pattern: str | None = None  # a regex every candidate answer must match ("19th century")
    proper: bool = False  # a name or title: candidates must hold a capitalised word or a number
    requires: tuple[str, ...] = ()  # asked only of concepts whose category is one of these
    # with ``requires``: not asked when the category is unknown either ("In which year did the Moon
    # sink?" gets a confident year from a 135M model)
    specific: bool = False
    category: bool = False  # "X is a ___": the answer is the head noun of what follows
    translations: dict[str, str] = field(default_factory=dict)  # language -> question


def _century(question: str, paraphrase: str, completion: str, cloze: str) -> Relation:
    """An "in which century" relation: the same answer rules for people, works and events."""
    return Relation(
        "century",
        question,
        paraphrase,
        completion,
        cloze,
        generic=True,
        mine=(r"\b(\d{1,2}(?:st|nd|rd|th) century)",),
        pattern=_CENTURY,
        similar=("century",),
        fallback=("16th century", "17th century", "18th century", "19th century", "20th century"),
    )


def _nickname(fallback: tuple[str, ...], tail: str = r") (?:the )?") -> Relation:
    """ "Also known as": the same questions for places and things; ``tail`` ends the mining regex."""
    return Relation(
        "nickname",
        "What is {n} also known as?",
        "What nickname does {n} have?",
        "{n} is also known as the",
        "{n} is often called the",
        describe="known as {a}",
        mine=(r"\b(?:also known as|nicknamed|often called|known as" + tail + _CAP,),
        similar=("nickname",),
        fallback=fallback,
        proper=True,
    )


_IS_A = (r"\b(?:is|was) (?:a|an|the) (?:famous |well-known |renowned |popular )?" + _PHRASE,)

PERSON = (
    Relation(
        "occupation",
        "What is {n}'s occupation?",
        "What does {n} do for a living?",
        CATEGORY_COMPLETION,
        "{n} works as a",
        generic=True,
        mine=_IS_A,
        category=True,
        similar=("profession", "occupation", "greatest"),
        fallback=("actor", "singer", "writer", "politician", "scientist", "painter", "athlete", "lawyer"),
        translations={
            "fr": "Quelle est la profession de {n} ?",
            "es": "¿Cuál es la profesión de {n}?",
            "de": "Welchen Beruf hat {n}?",
        },
    ),
    Relation(
        "country",
        "Which country is {n} from?",
        "What is {n}'s home country?",
        "{n} comes from the country of",
        "{n} is a citizen of",
        generic=True,
        describe="from {a}",
        mine=(r"\b(?:from|born in|citizen of) (?:the )?" + _CAP,),
        similar=("birth country", "country", "national team", "country lived"),
        fallback=("the United States", "France", "England", "Germany", "Italy", "Canada", "Spain"),
        translations={
            "fr": "De quel pays vient {n} ?",
            "es": "¿De qué país es {n}?",
            "de": "Aus welchem Land kommt {n}?",
        },
        proper=True,
    ),
    Relation(
        "birthplace",
        "Where was {n} born?",
        "In which city was {n} born?",
        "{n} was born in the city of",
        "{n} was born in",
        reverse="Which famous person was born in {a}?",
        describe="born in {a}",
        mine=(r"\bborn (?:and raised )?in (?:the )?" + _CAP,),
        similar=("birthplace", "birth city", "birth state", "birth colony"),
        fallback=("London", "New York City", "Chicago", "Paris", "Los Angeles", "Berlin", "Toronto"),
        translations={
            "fr": "Où est né(e) {n} ?",
            "es": "¿Dónde nació {n}?",
            "de": "Wo wurde {n} geboren?",
        },
        proper=True,
    ),
    Relation(
        "birth year",
        "In which year was {n} born?",
        "What year was {n} born in?",
        "{n} was born in the year",
        "The year of {n}'s birth is",
        mine=(r"\bborn (?:on |in )?(?:\w+ \d{1,2}, )?" + _YEAR,),
        similar=("birth year",),
        year=True,
    ),
    Relation(
        "famous for",
        "What is {n} famous for?",
        "What is {n} best known for?",
        "{n} is best known for",
        "{n} is famous for",
        describe="known for {a}",
        mine=(r"\b(?:known|famous|renowned) for (?:his |her |their |the )?" + _PHRASE,),
        similar=("famous theory", "research", "field", "famous novel", "famous painting", "song"),
        fallback=("his music", "the theory of evolution", "painting", "acting", "basketball", "poetry"),
    ),
    Relation(
        "notable work",
        "What is {n}'s most famous work?",
        "Which work of {n} is the best known?",
        "{n}'s most famous work is",
        "The best-known work of {n} is",
        reverse="Who created {a}?",
        describe="who created {a}",
        role="the most famous work of {n}",
        mine=(r"\b(?:wrote|composed|painted|directed|created|released|recorded) (?:the )?" + _CAP,),
        similar=("famous novel", "famous painting", "famous tragedy", "book", "opera", "song", "film"),
        fallback=("Hamlet", "The Starry Night", "Thriller", "Pride and Prejudice", "Guernica", "Yesterday"),
        proper=True,
    ),
    Relation(
        "death year",
        "In which year did {n} die?",
        "What year did {n} die?",
        "{n} died in the year",
        "The year of {n}'s death is",
        mine=(r"\bdied (?:on |in )?(?:\w+ \d{1,2}, )?" + _YEAR,),
        similar=("death year",),
        year=True,
    ),
    Relation(
        "death place",
        "Where did {n} die?",
        "In which city did {n} die?",
        "{n} died in the city of",
        "{n} spent the last years of life in",
        describe="who died in {a}",
        mine=(r"\bdied (?:in|at) (?:the )?" + _CAP,),
        similar=("death place", "death city"),
        fallback=("London", "Paris", "Vienna", "New York City", "Rome", "Berlin", "Madrid"),
        proper=True,
    ),
    Relation(
        "nationality",
        "What is {n}'s nationality?",
        "What nationality is {n}?",
        "{n}'s nationality is",
        "By nationality, {n} is",
        generic=True,
        mine=(r"\b(?:is|was) (?:a|an) (?:famous |renowned )?([A-Z][a-z]+(?:-[A-Z][a-z]+)?) ",),
        similar=("nationality",),
        fallback=("American", "British", "French", "German", "Italian", "Spanish", "Russian", "Dutch"),
        proper=True,
    ),
    Relation(
        "field",
        "In which field is {n} best known?",
        "What field did {n} work in?",
        "{n} worked in the field of",
        "{n} made major contributions to",
        generic=True,
        describe="known in {a}",
        mine=(r"\b(?:field of|contributions to) " + _PHRASE,),
        similar=("field",),
        fallback=("physics", "chemistry", "music", "literature", "painting", "politics", "sport", "biology"),
    ),
    Relation(
        "award",
        "What is the most famous award {n} received?",
        "Which major prize did {n} win?",
        "{n} was awarded the",
        "{n} won the",
        generic=True,
        mine=(r"\b(?:awarded|won|received) (?:the |a |an )?" + _CAP,),
        similar=("award", "prize"),
        fallback=("Nobel Prize", "Academy Award", "Pulitzer Prize", "Grammy Award", "Ballon d'Or"),
        proper=True,
    ),
    Relation(
        "spouse",
        "Who was {n} married to?",
        "Who was {n}'s spouse?",
        "{n} was married to",
        "{n} married",
        reverse="Who was married to {a}?",
        describe="married to {a}",
        role="the spouse of {n}",
        mine=(r"\bmarried (?:to )?" + _CAP,),
        similar=("spouse", "wife", "husband"),
        fallback=(
            "Mary Todd",
            "Martha Dandridge",
            "Pierre Curie",
            "Josephine de Beauharnais",
            "Anne Hathaway",
        ),
        proper=True,
    ),
    _century(
        "In which century did {n} live?", "When did {n} live?", "{n} lived in the", "{n} was active in the"
    ),
    Relation(
        "education",
        "Where did {n} study?",
        "Which university did {n} attend?",
        "{n} studied at",
        "{n} was educated at",
        describe="educated at {a}",
        mine=(r"\b(?:studied|educated|graduated) (?:at|from) (?:the )?" + _CAP,),
        similar=("university", "education", "school"),
        fallback=("Harvard University", "the University of Oxford", "the University of Cambridge", "Yale"),
        proper=True,
    ),
    Relation(
        "team",
        "Which team did {n} play for?",
        "Which club is {n} most associated with?",
        "{n} played for",
        "{n} is best known for playing for",
        describe="who played for {a}",
        mine=(r"\bplay(?:ed|s) for (?:the )?" + _CAP,),
        similar=("club", "team", "national team"),
        fallback=(
            "Barcelona",
            "the Chicago Bulls",
            "Real Madrid",
            "the Los Angeles Lakers",
            "Manchester United",
        ),
        proper=True,
        requires=("player", "footballer", "athlete", "champion", "boxer", "golfer", "swimmer", "runner"),
    ),
    Relation(
        "instrument",
        "Which instrument did {n} play?",
        "What musical instrument is {n} known for?",
        "{n} played the",
        "{n} was a master of the",
        generic=True,
        mine=(r"\bplay(?:ed|s|ing) the (piano|violin|guitar|organ|cello|flute|drums|trumpet|harpsichord)",),
        similar=("instrument",),
        fallback=("piano", "violin", "guitar", "organ", "cello", "flute", "drums"),
        requires=(
            "composer",
            "pianist",
            "musician",
            "guitarist",
            "singer",
            "songwriter",
            "drummer",
            "conductor",
        ),
    ),
    Relation(
        "office",
        "What office did {n} hold?",
        "What was {n}'s highest position?",
        "{n} served as the",
        "{n} held the office of",
        generic=True,
        mine=(r"\bserved as (?:the )?" + _CAP,),
        similar=("office", "position", "title"),
        fallback=("President of the United States", "Prime Minister", "Emperor of the French", "King"),
        proper=True,
        requires=("president", "politician", "statesman", "leader", "king", "queen", "emperor", "general"),
    ),
    Relation(
        "movement",
        "Which artistic movement is {n} associated with?",
        "Which style or era of art is {n} part of?",
        "{n} was a leading figure of the",
        "{n} is associated with the",
        generic=True,
        mine=(r"\b(?:figure of|associated with) the " + _CAP,),
        similar=("movement", "style", "period"),
        fallback=("Renaissance", "Romanticism", "Impressionism", "Cubism", "Baroque", "Classicism"),
        proper=True,
        requires=(
            "painter",
            "artist",
            "sculptor",
            "composer",
            "poet",
            "writer",
            "novelist",
            "architect",
            "polymath",
        ),
    ),
)

WORK = (
    Relation(
        "type",
        "What kind of work is {n}?",
        "Is {n} a book, a film, a song or something else?",
        CATEGORY_COMPLETION,
        "{n} is a classic",
        generic=True,
        mine=_IS_A,
        category=True,
        fallback=("novel", "film", "song", "play", "painting", "video game", "poem", "album"),
    ),
    Relation(
        "creator",
        "Who created {n}?",
        "Who is the author of {n}?",
        "{n} was written by",
        "{n} is a work by",
        reverse="What is the most famous work of {a}?",
        describe="by {a}",
        role="the author of {n}",
        mine=(
            r"\b(?:written|created|directed|composed|painted|sung|performed|made) by " + _CAP,
            r"\bby " + _CAP,
        ),
        similar=("author", "creator", "painter", "composer", "film director", "sculptor"),
        fallback=("Charles Dickens", "Stephen King", "Steven Spielberg", "Mark Twain", "J.K. Rowling"),
        translations={
            "fr": "Qui a créé {n} ?",
            "es": "¿Quién creó {n}?",
            "de": "Wer hat {n} geschaffen?",
        },
        proper=True,
    ),
    Relation(
        "genre",
        "What genre is {n}?",
        "Which genre does {n} belong to?",
        "{n} belongs to the genre of",
        "The genre of {n} is",
        generic=True,
        mine=(r"\b(?:a|an) " + _PHRASE + r" (?:novel|film|movie|story|song|play|series|book)",),
        similar=("genre", "movement"),
        fallback=("science fiction", "romance", "tragedy", "comedy", "horror", "fantasy", "pop", "mystery"),
    ),
    Relation(
        "year",
        "In which year was {n} first published or released?",
        "When did {n} first come out?",
        "{n} was first published in",
        "{n} was released in the year",
        mine=(r"\b(?:published|released|written|premiered|painted|in) (?:in )?" + _YEAR,),
        similar=("first film year", "year"),
        year=True,
    ),
    Relation(
        "main character",
        "Who is the main character of {n}?",
        "Who is the protagonist of {n}?",
        "The main character of {n} is",
        "The protagonist of {n} is",
        reverse="In which story is {a} the main character?",
        describe="about {a}",
        role="the main character of {n}",
        mine=(r"\b(?:follows|about|story of|character) " + _CAP,),
        similar=("hero", "heroine", "ring-bearer", "great expectations hero"),
        fallback=("Elizabeth Bennet", "Sherlock Holmes", "Frodo Baggins", "Jay Gatsby", "Huckleberry Finn"),
        proper=True,
    ),
    Relation(
        "setting",
        "Where is {n} set?",
        "In which place does {n} take place?",
        "{n} is set in",
        "The story of {n} takes place in",
        describe="set in {a}",
        mine=(r"\bset in (?:the )?" + _CAP,),
        similar=("world", "city"),
        fallback=("London", "New York City", "Paris", "Middle-earth", "a small town", "space"),
    ),
    Relation(
        "language",
        "In which language was {n} originally written?",
        "What is the original language of {n}?",
        "{n} was originally written in",
        "The original language of {n} is",
        generic=True,
        mine=(r"\bwritten in " + _CAP,),
        similar=("language",),
        fallback=("English", "French", "Spanish", "German", "Russian", "Italian", "Japanese"),
        proper=True,
    ),
    Relation(
        "origin country",
        "Which country does {n} come from?",
        "In which country was {n} made?",
        "{n} comes from the country of",
        "{n} is a work from",
        generic=True,
        describe="from {a}",
        mine=(r"\b(?:an?|the) (American|British|English|French|German|Italian|Spanish|Russian|Japanese) ",),
        similar=("country", "origin"),
        fallback=("the United States", "England", "France", "Germany", "Italy", "Spain", "Japan"),
        proper=True,
    ),
    Relation(
        "villain",
        "Who is the villain of {n}?",
        "Who is the antagonist of {n}?",
        "The main villain of {n} is",
        "The antagonist of {n} is",
        reverse="In which story is {a} the villain?",
        describe="with the villain {a}",
        role="the villain of {n}",
        mine=(r"\b(?:villain|antagonist),? " + _CAP,),
        similar=("villain", "antagonist"),
        fallback=("Lord Voldemort", "Sauron", "Darth Vader", "Professor Moriarty", "Captain Hook"),
        proper=True,
    ),
    Relation(
        "character",
        "Who is a famous character in {n}?",
        "Name a character from {n}.",
        "A famous character in {n} is",
        "One of the characters of {n} is",
        reverse="In which story does {a} appear?",
        describe="with the character {a}",
        role="a character of {n}",
        mine=(
            r"\b(?:characters?|friends?|hero|heroine|protagonist)"
            r"(?: named| called| such as| like| including)? " + _CAP,
        ),
        similar=("main character", "villain", "hero", "heroine", "ring-bearer", "wizard"),
        fallback=("Sherlock Holmes", "Hermione Granger", "Frodo Baggins", "Luke Skywalker", "Mr. Darcy"),
        proper=True,
    ),
    Relation(
        "theme",
        "What is {n} about?",
        "What is the main theme of {n}?",
        "{n} is a story about",
        "The main theme of {n} is",
        generic=True,
        describe="about {a}",
        mine=(r"\b(?:about|explores|themes? of) " + _PHRASE,),
        similar=("theme", "subject"),
        fallback=("love", "war", "friendship", "revenge", "growing up", "power", "survival"),
    ),
    _century(
        "In which century was {n} made?",
        "When was {n} created?",
        "{n} was created in the",
        "{n} dates from the",
    ),
    Relation(
        "award",
        "What is the most famous award {n} won?",
        "Which major prize did {n} receive?",
        "{n} won the",
        "{n} was awarded the",
        generic=True,
        mine=(r"\b(?:won|awarded|received) (?:the |a |an )?" + _CAP,),
        similar=("award", "prize"),
        fallback=("Academy Award for Best Picture", "Pulitzer Prize", "Grammy Award", "Booker Prize"),
        proper=True,
    ),
    Relation(
        "location",
        "Where is {n} displayed today?",
        "Which museum holds {n}?",
        "{n} is displayed at the",
        "Today {n} hangs in the",
        describe="kept at {a}",
        mine=(r"\b(?:displayed|housed|kept|hangs) (?:at|in) (?:the )?" + _CAP,),
        similar=("museum", "location"),
        fallback=("Louvre", "Museum of Modern Art", "Uffizi Gallery", "Prado Museum", "Rijksmuseum"),
        proper=True,
        requires=("painting", "sculpture", "masterpiece", "portrait", "fresco", "statue"),
    ),
)

# category words of places that are one structure (asked the city, the builder, the year built)
_LANDMARK = (
    *("tower", "monument", "building", "statue", "bridge", "palace", "castle", "cathedral", "museum"),
    *("landmark", "stadium", "temple", "church", "wall", "structure", "skyscraper", "site", "wonder"),
)

_NATURAL = (
    *("river", "stream", "lake", "desert", "mountain", "volcano", "ocean", "sea", "forest", "canyon"),
    *("valley", "waterfall", "island", "peninsula", "region"),
)

PLACE = (
    Relation(
        "type",
        "What kind of place is {n}?",
        "Is {n} a city, a country, a building or something else?",
        CATEGORY_COMPLETION,
        "{n} is a large",
        generic=True,
        mine=_IS_A,
        category=True,
        fallback=("city", "country", "island", "mountain", "river", "building", "monument", "desert"),
    ),
    Relation(
        "country",
        "In which country is {n}?",
        "Which country is {n} located in?",
        "{n} is located in the country of",
        "{n} is a place in",
        generic=True,
        describe="in {a}",
        role="the country of {n}",
        mine=(r"\b(?:in|of|capital of) (?:the )?" + _CAP,),
        similar=("country", "birth country", "origin", "source country"),
        fallback=("France", "Italy", "Japan", "the United States", "Germany", "Spain", "China", "Brazil"),
        translations={
            "fr": "Dans quel pays se trouve {n} ?",
            "es": "¿En qué país está {n}?",
            "de": "In welchem Land liegt {n}?",
        },
        proper=True,
    ),
    Relation(
        "continent",
        "On which continent is {n}?",
        "Which continent is {n} on?",
        "{n} is on the continent of",
        "{n} is located in the continent of",
        generic=True,
        mine=(r"\b(Europe|Asia|Africa|North America|South America|Australia|Antarctica|Oceania)\b",),
        similar=("continent",),
        fallback=("Europe", "Asia", "Africa", "North America", "South America", "Australia"),
        proper=True,
    ),
    Relation(
        "region",
        "In which region is {n} located?",
        "Where exactly is {n}?",
        "{n} is located in",
        "{n} lies in",
        generic=True,
        describe="in {a}",
        mine=(r"\b(?:located|lies|situated|found|stretching) (?:in|across) (?:the )?" + _CAP,),
        similar=("region", "continent"),
        fallback=("North Africa", "South America", "Central Asia", "the Middle East", "Siberia"),
        proper=True,
        requires=_NATURAL,
    ),
    Relation(
        "flows into",
        "Into which ocean or sea does {n} flow?",
        "Where does {n} end?",
        "{n} flows into the",
        "The mouth of {n} opens into the",
        generic=True,
        mine=(r"\b(?:flows?|empties|drains) into (?:the )?" + _CAP,),
        similar=("flows into",),
        fallback=("Atlantic Ocean", "Pacific Ocean", "Mediterranean Sea", "Indian Ocean", "Black Sea"),
        proper=True,
        requires=("river", "stream"),
        specific=True,
    ),
    _nickname(("City of Light", "Big Apple", "Eternal City", "Roof of the World", "Land of Fire")),
    Relation(
        "landmark",
        "What is the most famous landmark in {n}?",
        "Which famous landmark is in {n}?",
        "The most famous landmark in {n} is",
        "{n} is famous for the",
        reverse="Where is {a}?",
        describe="home to {a}",
        role="the most famous landmark in {n}",
        mine=(r"\b(?:home to|famous for|known for) (?:the |its )?" + _CAP,),
        similar=("museum", "park", "theatre", "ancient site", "tower"),
        fallback=("the Eiffel Tower", "the Colosseum", "Big Ben", "the Statue of Liberty", "the Louvre"),
        proper=True,
    ),
    Relation(
        "capital",
        "What is the capital of {n}?",
        "Which city is the capital of {n}?",
        "The capital of {n} is",
        "The capital city of {n} is",
        describe="whose capital is {a}",
        role="the capital of {n}",
        mine=(r"\bcapital (?:city )?(?:is|of) " + _CAP,),
        similar=("capital", "city"),
        fallback=("London", "Paris", "Berlin", "Madrid", "Rome", "Tokyo", "Ottawa", "Canberra"),
        translations={
            "fr": "Quelle est la capitale de {n} ?",
            "es": "¿Cuál es la capital de {n}?",
            "de": "Was ist die Hauptstadt von {n}?",
        },
        proper=True,
        requires=("country", "nation", "state", "kingdom", "republic", "province", "island", "region"),
    ),
    Relation(
        "language",
        "What language is spoken in {n}?",
        "Which language do people in {n} speak?",
        "The main language spoken in {n} is",
        "People in {n} speak",
        generic=True,
        mine=(r"\b(?:speak|language is|spoken) " + _CAP,),
        similar=("language",),
        fallback=("English", "French", "Spanish", "German", "Japanese", "Italian", "Portuguese", "Arabic"),
        proper=True,
    ),
    Relation(
        "city",
        "In which city is {n}?",
        "Which city is {n} in?",
        "{n} is located in the city of",
        "{n} stands in",
        describe="in {a}",
        role="the city of {n}",
        mine=(r"\b(?:in|located in|stands in) (?:the )?" + _CAP,),
        similar=("city",),
        fallback=("Paris", "New York City", "London", "Rome", "Beijing", "Sydney", "Agra", "Moscow"),
        proper=True,
        requires=_LANDMARK,
    ),
    Relation(
        "year built",
        "In which year was {n} built?",
        "When was {n} completed?",
        "{n} was built in the year",
        "{n} was completed in",
        mine=(r"\b(?:built|completed|constructed|opened|erected|dedicated) in " + _YEAR,),
        similar=("year", "completion year", "construction year"),
        year=True,
        requires=_LANDMARK,
    ),
    Relation(
        "designer",
        "Who designed {n}?",
        "Who was the architect of {n}?",
        "{n} was designed by",
        "The architect of {n} was",
        reverse="What famous structure did {a} design?",
        describe="designed by {a}",
        role="the designer of {n}",
        mine=(r"\b(?:designed|built|created|sculpted) by " + _CAP,),
        similar=("designer", "architect", "sculptor", "engineer"),
        fallback=("Gustave Eiffel", "Frédéric Auguste Bartholdi", "Christopher Wren", "Antoni Gaudí"),
        proper=True,
        requires=_LANDMARK,
    ),
    Relation(
        "material",
        "What is {n} made of?",
        "What material was {n} built from?",
        "{n} is made of",
        "{n} was built from",
        generic=True,
        mine=(r"\bmade (?:of|from) " + _PHRASE,),
        similar=("material",),
        fallback=("stone", "iron", "copper", "marble", "brick", "steel", "concrete"),
        requires=_LANDMARK,
    ),
    Relation(
        "largest city",
        "What is the largest city in {n}?",
        "Which city is the biggest in {n}?",
        "The largest city in {n} is",
        "The biggest city of {n} is",
        describe="whose largest city is {a}",
        mine=(r"\blargest city (?:is|of) " + _CAP,),
        similar=("largest city", "city"),
        fallback=("New York City", "Tokyo", "Sydney", "Toronto", "Istanbul", "Mumbai", "São Paulo"),
        proper=True,
        requires=("country", "nation", "state", "kingdom", "republic", "province", "island", "region"),
    ),
    Relation(
        "currency",
        "What currency is used in {n}?",
        "What money do people use in {n}?",
        "The currency of {n} is the",
        "In {n}, people pay with the",
        generic=True,
        mine=(r"\bcurrency (?:is|of) (?:the )?" + _PHRASE,),
        similar=("currency",),
        fallback=("euro", "dollar", "pound sterling", "yen", "yuan", "rupee", "peso"),
        requires=("country", "nation", "state", "kingdom", "republic"),
    ),
    Relation(
        "river",
        "Which river flows through {n}?",
        "What is the main river of {n}?",
        "The river that flows through {n} is the",
        "{n} lies on the river",
        describe="on the {a}",
        mine=(r"\b(?:on|along|banks of) the (?:river )?" + _CAP,),
        similar=("river",),
        fallback=("Thames", "Seine", "Danube", "Nile", "Hudson", "Tiber", "Rhine"),
        proper=True,
        requires=("city", "capital", "town", "metropolis"),
    ),
)

ORGANISATION = (
    Relation(
        "type",
        "What kind of organisation is {n}?",
        "Is {n} a company, a band, a team or something else?",
        CATEGORY_COMPLETION,
        "{n} is a large",
        generic=True,
        mine=_IS_A,
        category=True,
        fallback=("company", "band", "football club", "university", "charity", "political party", "bank"),
    ),
    Relation(
        "founder",
        "Who founded {n}?",
        "Who is the founder of {n}?",
        "{n} was founded by",
        "The founder of {n} is",
        reverse="Which organisation did {a} found?",
        describe="founded by {a}",
        role="the founder of {n}",
        mine=(r"\b(?:founded|established|started|created) (?:in \d{4} )?by " + _CAP,),
        similar=("founder", "co-founder", "CEO"),
        fallback=("Bill Gates", "Steve Jobs", "Henry Ford", "Walt Disney", "Jeff Bezos", "Larry Page"),
        translations={
            "fr": "Qui a fondé {n} ?",
            "es": "¿Quién fundó {n}?",
            "de": "Wer hat {n} gegründet?",
        },
        proper=True,
    ),
    Relation(
        "headquarters",
        "Where is {n} headquartered?",
        "In which city is {n} based?",
        "{n} is headquartered in",
        "The headquarters of {n} are in",
        describe="based in {a}",
        mine=(r"\b(?:headquartered|based|located) in " + _CAP,),
        similar=("city", "headquarters"),
        fallback=("New York City", "London", "Seattle", "Tokyo", "Paris", "Cupertino", "Munich"),
        proper=True,
    ),
    Relation(
        "industry",
        "What industry is {n} in?",
        "What field does {n} work in?",
        "{n} is a company in the",
        "{n} works in the field of",
        generic=True,
        mine=(
            r"\b(?:a|an) (?:global |leading |major |multinational )?"
            + _PHRASE
            + r" (?:company|corporation|firm|giant)",
        ),
        similar=("industry",),
        fallback=("technology", "banking", "automotive", "retail", "entertainment", "oil", "music"),
    ),
    Relation(
        "product",
        "What is {n}'s best-known product?",
        "What is {n} best known for making?",
        "{n} is best known for its",
        "The most famous product of {n} is",
        reverse="Which company makes {a}?",
        describe="behind {a}",
        role="the best-known product of {n}",
        mine=(r"\b(?:products? (?:like|such as|including)|makes|made|created|developed) (?:the )?" + _CAP,),
        similar=("product", "invention"),
        fallback=("the iPhone", "Windows", "the Model T", "the PlayStation", "Coca-Cola", "the Walkman"),
        proper=True,
    ),
    Relation(
        "year founded",
        "In which year was {n} founded?",
        "When was {n} founded?",
        "{n} was founded in the year",
        "{n} was established in",
        mine=(r"\b(?:founded|established|formed|started) in " + _YEAR,),
        similar=("year",),
        year=True,
    ),
    Relation(
        "leader",
        "Who is the CEO or leader of {n}?",
        "Who leads {n}?",
        "The CEO of {n} is",
        "{n} is led by",
        reverse="Which organisation does {a} lead?",
        describe="led by {a}",
        role="the leader of {n}",
        mine=(r"\b(?:led by|CEO,?|chief executive,?) " + _CAP,),
        similar=("CEO", "leader", "chairman"),
        fallback=("Tim Cook", "Satya Nadella", "Sundar Pichai", "Elon Musk", "Mark Zuckerberg"),
        proper=True,
    ),
    Relation(
        "origin country",
        "Which country is {n} from?",
        "In which country was {n} founded?",
        "{n} is a company from",
        "{n} was founded in the country of",
        generic=True,
        describe="from {a}",
        mine=(r"\b(?:an?|the) (American|British|German|French|Japanese|Italian|Swedish|Korean|Chinese) ",),
        similar=("country", "origin"),
        fallback=("the United States", "Germany", "Japan", "the United Kingdom", "France", "South Korea"),
        proper=True,
    ),
    Relation(
        "rival",
        "What is {n}'s main rival?",
        "Who is {n}'s biggest competitor?",
        "The main rival of {n} is",
        "{n} competes mainly with",
        describe="a rival of {a}",
        mine=(r"\b(?:rival|competitor)s? (?:is |are |like |such as )?" + _CAP,),
        similar=("rival", "competitor"),
        fallback=("Microsoft", "Google", "Samsung", "Pepsi", "Real Madrid", "Nike", "Toyota"),
        proper=True,
    ),
    Relation(
        "lead singer",
        "Who was the lead singer of {n}?",
        "Who fronted {n}?",
        "The lead singer of {n} was",
        "{n}'s frontman was",
        reverse="Which band did {a} sing for?",
        describe="fronted by {a}",
        role="the lead singer of {n}",
        mine=(r"\b(?:singer|frontman|vocalist),? " + _CAP,),
        similar=("singer", "member"),
        fallback=("Freddie Mercury", "Mick Jagger", "John Lennon", "Bono", "Kurt Cobain"),
        proper=True,
        requires=("band", "group"),
    ),
    Relation(
        "member",
        "Who was a member of {n}?",
        "Name a member of {n}.",
        "A famous member of {n} was",
        "{n} included the musician",
        reverse="Which band was {a} a member of?",
        describe="with {a}",
        role="a member of {n}",
        mine=(r"\b(?:members?(?: were| was| included)?|formed by|founded by|including|led by),? " + _CAP,),
        similar=("lead singer", "member"),
        fallback=("Mick Jagger", "Freddie Mercury", "Bono", "Kurt Cobain", "Jim Morrison", "Roger Waters"),
        proper=True,
        requires=("band", "group"),
        specific=True,
    ),
    Relation(
        "music genre",
        "What kind of music did {n} play?",
        "Which genre of music is {n} known for?",
        "{n} was a famous band that played",
        "The music of {n} is classic",
        generic=True,
        pattern=_GENRES,
        mine=(r"\b" + _GENRES + r"\b",),
        similar=("music genre", "genre"),
        fallback=("rock", "pop", "jazz", "punk", "heavy metal", "folk", "hip hop"),
        requires=("band", "group"),
        specific=True,
    ),
    Relation(
        "decade",
        "In which decade did {n} become famous?",
        "When was {n} at its most popular?",
        "{n} became famous in the",
        "{n} was most popular in the",
        generic=True,
        pattern=r"\b(?:19|20)\d0s\b",
        mine=(r"\b((?:19|20)\d0s)\b",),
        similar=("decade",),
        fallback=("1950s", "1960s", "1970s", "1980s", "1990s", "2000s"),
        requires=("band", "group"),
        specific=True,
    ),
    Relation(
        "sport",
        "Which sport does {n} play?",
        "What sport is {n} known for?",
        "{n} is a professional",
        "{n} competes in the sport of",
        generic=True,
        mine=(r"\b(football|soccer|basketball|baseball|cricket|rugby|hockey|tennis) ",),
        similar=("sport",),
        fallback=("football", "basketball", "baseball", "cricket", "rugby", "ice hockey"),
        requires=("club", "team", "league"),
    ),
)

THING = (
    Relation(
        "type",
        "What is {n}?",
        "What kind of thing is {n}?",
        CATEGORY_COMPLETION,
        "{n} is a type of",
        generic=True,
        mine=_IS_A,
        category=True,
        fallback=("planet", "animal", "machine", "currency", "language", "disease", "software", "food"),
    ),
    Relation(
        "inventor",
        "Who invented {n}?",
        "Who created {n}?",
        "{n} was invented by",
        "The inventor of {n} is",
        reverse="What did {a} invent?",
        describe="invented by {a}",
        role="the inventor of {n}",
        mine=(r"\b(?:invented|created|developed|discovered|introduced) by " + _CAP,),
        similar=("inventor", "discoverer", "creator", "engineer"),
        fallback=("Thomas Edison", "Alexander Graham Bell", "Nikola Tesla", "the Wright brothers"),
        proper=True,
    ),
    Relation(
        "use",
        "What is {n} used for?",
        "What do people use {n} for?",
        "{n} is used for",
        "People use {n} to",
        generic=True,
        describe="used for {a}",
        mine=(r"\bused (?:for|to) " + _PHRASE,),
        similar=("purpose", "function"),
        fallback=("communication", "transport", "cooking", "payments", "medicine", "entertainment"),
    ),
    Relation(
        "year",
        "In which year was {n} invented or introduced?",
        "When was {n} first introduced?",
        "{n} was invented in the year",
        "{n} was first introduced in",
        mine=(r"\b(?:invented|introduced|created|launched|discovered) in " + _YEAR,),
        similar=("year",),
        year=True,
    ),
    Relation(
        "made of",
        "What is {n} made of?",
        "What material is {n} made from?",
        "{n} is made of",
        "The main material of {n} is",
        generic=True,
        mine=(r"\bmade (?:of|from) " + _PHRASE,),
        similar=("material",),
        fallback=("metal", "wood", "plastic", "stone", "glass", "paper", "rock and ice"),
    ),
    _nickname(
        ("Blue Planet", "Evening Star", "Unsinkable Ship", "Iron Horse", "Big Blue", "Gas Giant"),
        r"|means) (?:the |\")?",
    ),
    Relation(
        "orbits",
        "What does {n} orbit?",
        "Around which body does {n} revolve?",
        "{n} orbits the",
        "{n} revolves around the",
        generic=True,
        mine=(r"\b(?:orbits?|orbiting|revolves around|satellite of) (?:the |around the )?" + _CAP,),
        similar=("orbits",),
        fallback=("Sun", "Earth", "Jupiter", "Saturn", "Milky Way"),
        proper=True,
        requires=("planet", "moon", "satellite", "comet", "asteroid", "star"),
        specific=True,
    ),
    Relation(
        "position",
        "Which planet from the Sun is {n}?",
        "Counting from the Sun, which planet is {n}?",
        "Counting from the Sun, {n} is the",
        "In our solar system, {n} is the",
        generic=True,
        pattern=r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth)\b",
        mine=(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth) planet from the Sun",),
        similar=("position",),
        fallback=("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"),
        requires=("planet",),
        specific=True,
    ),
    Relation(
        "year sank",
        "In which year did {n} sink?",
        "When did {n} sink?",
        "{n} sank in the year",
        "{n} went down in",
        mine=(r"\bsank\b[^.]{0,40}?" + _YEAR,),
        similar=("year sank",),
        year=True,
        requires=("ship", "vessel", "liner", "boat", "submarine"),
        specific=True,
    ),
    Relation(
        "sank after hitting",
        "What did {n} hit before it sank?",
        "What did {n} collide with?",
        "{n} sank after hitting an",
        "{n} collided with an",
        generic=True,
        mine=(r"\b(?:collided with|hit|struck) (?:an? |the )?" + _PHRASE,),
        similar=("sank after hitting",),
        fallback=("iceberg", "rock", "reef", "mine", "another ship", "torpedo"),
        requires=("ship", "vessel", "liner", "boat", "submarine"),
        specific=True,
    ),
    Relation(
        "ocean",
        "In which ocean did {n} sink?",
        "Where did {n} sink?",
        "{n} sank in the",
        "The wreck of {n} lies in the",
        mine=(r"\bsank in (?:the )?" + _CAP,),
        similar=("ocean", "flows into"),
        fallback=("Pacific Ocean", "Indian Ocean", "Mediterranean Sea", "Arctic Ocean", "Baltic Sea"),
        proper=True,
        requires=("ship", "vessel", "liner", "boat", "submarine"),
        specific=True,
    ),
    Relation(
        "origin country",
        "In which country did {n} originate?",
        "Where does {n} come from?",
        "{n} originated in",
        "{n} was first developed in",
        generic=True,
        describe="from {a}",
        mine=(r"\b(?:originated|developed|invented|first made) in (?:the )?" + _CAP,),
        similar=("country", "origin"),
        fallback=("the United States", "China", "Japan", "Germany", "England", "France", "Italy"),
        proper=True,
    ),
    Relation(
        "field",
        "Which field does {n} belong to?",
        "In which area is {n} important?",
        "{n} belongs to the field of",
        "{n} is an important part of",
        generic=True,
        mine=(r"\b(?:field of|part of|branch of) " + _PHRASE,),
        similar=("field",),
        fallback=("physics", "computing", "medicine", "finance", "astronomy", "biology", "music"),
    ),
    Relation(
        "part of",
        "What larger whole is {n} part of?",
        "What is {n} a part of?",
        "{n} is part of the",
        "{n} belongs to the",
        generic=True,
        mine=(r"\bpart of (?:the )?" + _PHRASE,),
        similar=("part of", "system"),
        fallback=("solar system", "internet", "human body", "animal kingdom", "periodic table"),
    ),
)

EVENT = (
    Relation(
        "type",
        "What kind of event was {n}?",
        "Was {n} a war, a festival, a revolution or something else?",
        CATEGORY_COMPLETION,
        "{n} was a major",
        generic=True,
        mine=_IS_A,
        category=True,
        fallback=("war", "revolution", "festival", "sporting event", "election", "disaster", "treaty"),
    ),
    Relation(
        "start year",
        "In which year did {n} begin?",
        "When did {n} start?",
        "{n} began in the year",
        "{n} started in",
        mine=(r"\b(?:began|started|from|in) " + _YEAR,),
        similar=("start", "year"),
        year=True,
    ),
    Relation(
        "end year",
        "In which year did {n} end?",
        "When did {n} end?",
        "{n} ended in the year",
        "{n} came to an end in",
        mine=(r"\b(?:ended|until|to) " + _YEAR,),
        similar=("end",),
        year=True,
    ),
    Relation(
        "place",
        "Where did {n} take place?",
        "In which country did {n} happen?",
        "{n} took place in",
        "{n} happened in",
        describe="in {a}",
        role="the place of {n}",
        mine=(r"\b(?:took place|happened|held|fought) in (?:the )?" + _CAP,),
        similar=("country", "city", "first modern city", "coronation city"),
        fallback=("France", "Europe", "the United States", "Russia", "Germany", "China", "England"),
        proper=True,
    ),
    Relation(
        "key figure",
        "Who was the most important figure in {n}?",
        "Who led {n}?",
        "The most famous leader of {n} was",
        "The key figure of {n} was",
        reverse="Which event is {a} best known for?",
        describe="led by {a}",
        role="the most important figure in {n}",
        mine=(r"\bled by " + _CAP,),
        similar=("german leader", "soviet leader", "british pm", "us president", "founder"),
        fallback=("Napoleon Bonaparte", "George Washington", "Winston Churchill", "Vladimir Lenin"),
        proper=True,
    ),
    Relation(
        "winner",
        "Who won {n}?",
        "Which side won {n}?",
        "{n} was won by",
        "The winner of {n} was",
        describe="won by {a}",
        role="the winner of {n}",
        mine=(r"\bwon by (?:the )?" + _CAP,),
        similar=("winner", "victor"),
        fallback=("the Allies", "France", "Brazil", "the United States", "England", "the Union"),
        proper=True,
    ),
    Relation(
        "frequency",
        "How often is {n} held?",
        "How many years are there between two editions of {n}?",
        "{n} is held every",
        "{n} takes place once every",
        generic=True,
        pattern=r"\b(?:year|two|three|four|five|ten|\d+)\b",
        mine=(r"\bevery ((?:\w+ )?years?)\b",),
        similar=("frequency",),
        fallback=("year", "two years", "three years", "five years", "ten years"),
        requires=("games", "olympics", "cup", "festival", "championship", "tournament", "election", "event"),
        specific=True,
    ),
    Relation(
        "sides",
        "Which alliance fought against the Allies in {n}?",
        "Who were the main opponents of the Allies in {n}?",
        "In {n}, the Allies fought against the",
        "The opponents of the Allies in {n} were the",
        mine=(r"\b(Axis(?: powers)?|Central Powers)\b",),
        similar=("sides",),
        fallback=("Central Powers", "Confederacy", "Warsaw Pact", "Ottoman Empire"),
        proper=True,
        requires=("war", "conflict"),
        specific=True,
    ),
    Relation(
        "cause",
        "What caused {n}?",
        "What was the main cause of {n}?",
        "{n} was caused by",
        "The main cause of {n} was",
        generic=True,
        describe="caused by {a}",
        mine=(r"\b(?:caused by|triggered by|sparked by) (?:the )?" + _PHRASE,),
        similar=("cause",),
        fallback=("an assassination", "taxes", "a famine", "a border dispute", "religious conflict"),
    ),
    Relation(
        "result",
        "What was the result of {n}?",
        "How did {n} end?",
        "{n} resulted in",
        "{n} ended with",
        generic=True,
        mine=(r"\b(?:resulted in|led to|ended with) (?:the )?" + _PHRASE,),
        similar=("result", "outcome"),
        fallback=("a peace treaty", "independence", "a new government", "the fall of the monarchy"),
    ),
    _century(
        "In which century did {n} happen?",
        "When did {n} happen?",
        "{n} happened in the",
        "{n} took place during the",
    ),
)

# The same questions in French, Spanish and German, for the relations whose answers read alike in
# every language (names, titles, places, years), so a kept English answer can judge the reply.
# Relations with generic answers ("physicist", "Europe") are not translated: "physicien" would miss.
_TRANSLATIONS: dict[tuple[str, str], dict[str, str]] = {
    ("person", "birth year"): {
        "fr": "En quelle année {n} est-il né ?",
        "es": "¿En qué año nació {n}?",
        "de": "In welchem Jahr wurde {n} geboren?",
    },
    ("person", "death year"): {
        "fr": "En quelle année {n} est-il mort ?",
        "es": "¿En qué año murió {n}?",
        "de": "In welchem Jahr ist {n} gestorben?",
    },
    ("person", "death place"): {
        "fr": "Où {n} est-il mort ?",
        "es": "¿Dónde murió {n}?",
        "de": "Wo ist {n} gestorben?",
    },
    ("person", "notable work"): {
        "fr": "Quelle est l'œuvre la plus célèbre de {n} ?",
        "es": "¿Cuál es la obra más famosa de {n}?",
        "de": "Was ist das berühmteste Werk von {n}?",
    },
    ("person", "spouse"): {
        "fr": "Avec qui {n} était-il marié ?",
        "es": "¿Con quién estaba casado {n}?",
        "de": "Mit wem war {n} verheiratet?",
    },
    ("person", "education"): {
        "fr": "Où {n} a-t-il étudié ?",
        "es": "¿Dónde estudió {n}?",
        "de": "Wo hat {n} studiert?",
    },
    ("person", "team"): {
        "fr": "Dans quelle équipe {n} a-t-il joué ?",
        "es": "¿En qué equipo jugó {n}?",
        "de": "Für welche Mannschaft hat {n} gespielt?",
    },
    ("work", "year"): {
        "fr": "En quelle année {n} a-t-il été publié ou sorti ?",
        "es": "¿En qué año se publicó o estrenó {n}?",
        "de": "In welchem Jahr wurde {n} veröffentlicht?",
    },
    ("work", "main character"): {
        "fr": "Qui est le personnage principal de {n} ?",
        "es": "¿Quién es el personaje principal de {n}?",
        "de": "Wer ist die Hauptfigur von {n}?",
    },
    ("work", "setting"): {
        "fr": "Où se déroule {n} ?",
        "es": "¿Dónde transcurre {n}?",
        "de": "Wo spielt {n}?",
    },
    ("work", "villain"): {
        "fr": "Qui est le méchant de {n} ?",
        "es": "¿Quién es el villano de {n}?",
        "de": "Wer ist der Bösewicht in {n}?",
    },
    ("work", "location"): {
        "fr": "Où {n} est-il exposé aujourd'hui ?",
        "es": "¿Dónde se expone hoy {n}?",
        "de": "Wo ist {n} heute ausgestellt?",
    },
    ("place", "landmark"): {
        "fr": "Quel est le monument le plus célèbre de {n} ?",
        "es": "¿Cuál es el monumento más famoso de {n}?",
        "de": "Was ist das berühmteste Wahrzeichen von {n}?",
    },
    ("place", "city"): {
        "fr": "Dans quelle ville se trouve {n} ?",
        "es": "¿En qué ciudad está {n}?",
        "de": "In welcher Stadt steht {n}?",
    },
    ("place", "year built"): {
        "fr": "En quelle année {n} a-t-il été construit ?",
        "es": "¿En qué año se construyó {n}?",
        "de": "In welchem Jahr wurde {n} gebaut?",
    },
    ("place", "designer"): {
        "fr": "Qui a conçu {n} ?",
        "es": "¿Quién diseñó {n}?",
        "de": "Wer hat {n} entworfen?",
    },
    ("place", "largest city"): {
        "fr": "Quelle est la plus grande ville de {n} ?",
        "es": "¿Cuál es la ciudad más grande de {n}?",
        "de": "Was ist die größte Stadt in {n}?",
    },
    ("place", "river"): {
        "fr": "Quel fleuve traverse {n} ?",
        "es": "¿Qué río atraviesa {n}?",
        "de": "Welcher Fluss fließt durch {n}?",
    },
    ("organisation", "headquarters"): {
        "fr": "Où se trouve le siège de {n} ?",
        "es": "¿Dónde tiene su sede {n}?",
        "de": "Wo hat {n} seinen Hauptsitz?",
    },
    ("organisation", "product"): {
        "fr": "Quel est le produit le plus connu de {n} ?",
        "es": "¿Cuál es el producto más conocido de {n}?",
        "de": "Was ist das bekannteste Produkt von {n}?",
    },
    ("organisation", "year founded"): {
        "fr": "En quelle année {n} a-t-il été fondé ?",
        "es": "¿En qué año se fundó {n}?",
        "de": "In welchem Jahr wurde {n} gegründet?",
    },
    ("organisation", "leader"): {
        "fr": "Qui dirige {n} ?",
        "es": "¿Quién dirige {n}?",
        "de": "Wer leitet {n}?",
    },
    ("organisation", "lead singer"): {
        "fr": "Qui était le chanteur principal de {n} ?",
        "es": "¿Quién era el cantante principal de {n}?",
        "de": "Wer war der Leadsänger von {n}?",
    },
    ("thing", "inventor"): {
        "fr": "Qui a inventé {n} ?",
        "es": "¿Quién inventó {n}?",
        "de": "Wer hat {n} erfunden?",
    },
    ("thing", "year"): {
        "fr": "En quelle année {n} a-t-il été inventé ou introduit ?",
        "es": "¿En qué año se inventó o introdujo {n}?",
        "de": "In welchem Jahr wurde {n} erfunden oder eingeführt?",
    },
    ("event", "start year"): {
        "fr": "En quelle année {n} a-t-il commencé ?",
        "es": "¿En qué año comenzó {n}?",
        "de": "In welchem Jahr begann {n}?",
    },
    ("event", "end year"): {
        "fr": "En quelle année {n} s'est-il terminé ?",
        "es": "¿En qué año terminó {n}?",
        "de": "In welchem Jahr endete {n}?",
    },
    ("event", "place"): {
        "fr": "Où {n} a-t-il eu lieu ?",
        "es": "¿Dónde tuvo lugar {n}?",
        "de": "Wo fand {n} statt?",
    },
    ("event", "key figure"): {
        "fr": "Qui était la figure la plus importante de {n} ?",
        "es": "¿Quién fue la figura más importante de {n}?",
        "de": "Wer war die wichtigste Person in {n}?",
    },
    ("event", "winner"): {
        "fr": "Qui a gagné {n} ?",
        "es": "¿Quién ganó {n}?",
        "de": "Wer hat {n} gewonnen?",
    },
    ("work", "character"): {
        "fr": "Qui est un personnage célèbre de {n} ?",
        "es": "¿Quién es un personaje famoso de {n}?",
        "de": "Wer ist eine berühmte Figur in {n}?",
    },
    ("organisation", "member"): {
        "fr": "Qui était membre de {n} ?",
        "es": "¿Quién era miembro de {n}?",
        "de": "Wer war Mitglied von {n}?",
    },
    ("thing", "year sank"): {
        "fr": "En quelle année {n} a-t-il coulé ?",
        "es": "¿En qué año se hundió {n}?",
        "de": "In welchem Jahr sank {n}?",
    },
}


def _translated(kind: str, relations: tuple[Relation, ...]) -> tuple[Relation, ...]:
    """``relations`` with the questions of ``_TRANSLATIONS`` added to those written inline."""
    return tuple(
        replace(r, translations={**_TRANSLATIONS.get((kind, r.name), {}), **r.translations})
        for r in relations
    )


RELATIONS: dict[str, tuple[Relation, ...]] = {
    kind: _translated(kind, relations)
    for kind, relations in (
        ("person", PERSON),
        ("work", WORK),
        ("place", PLACE),
        ("organisation", ORGANISATION),
        ("thing", THING),
        ("event", EVENT),
    )
}

# category words of the model's own description -> kind (first match in its "X is a ..." wins)
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "person": _words(
        "singer songwriter rapper actor actress musician artist painter sculptor writer author novelist "
        "poet playwright president politician statesman leader king queen emperor empress prince "
        "princess scientist physicist chemist biologist mathematician inventor entrepreneur "
        "businessman businesswoman billionaire engineer philosopher composer conductor director "
        "producer filmmaker athlete player footballer boxer golfer swimmer runner champion explorer "
        "astronaut general soldier pope saint activist lawyer judge doctor economist journalist "
        "comedian model dancer chef designer architect ceo pioneer visionary man woman person "
        "figure queen monarch pharaoh prophet theologian historian pianist guitarist drummer "
        "rockstar star celebrity icon personality novelist footballer polymath genius scholar "
        "astronomer botanist naturalist physician surgeon nurse mystic monk nun priest bishop "
        "reformer revolutionary dictator chancellor senator governor mayor commander admiral "
        "warrior knight explorer navigator aviator pilot sailor actor"
    ),
    "place": _words(
        "city town village capital country nation state province region island continent river lake "
        "mountain volcano ocean sea desert park landmark monument building tower bridge palace castle "
        "cathedral church temple mosque museum destination metropolis place area location district "
        "county kingdom republic peninsula valley canyon forest waterfall beach neighborhood "
        "neighbourhood borough stadium square street port harbour harbor statue wall structure "
        "skyscraper fortification site wonder attraction"
    ),
    "work": _words(
        "novel book film movie song album play series show story poem painting sculpture opera "
        "symphony game comic manga anime musical franchise classic tale saga trilogy "
        "epic sitcom drama episode fairy"
    ),
    "organisation": _words(
        "company corporation firm business brand organisation organization band group team club "
        "university college school institution agency party conglomerate giant manufacturer "
        "retailer startup network bank charity foundation enterprise government association league "
        "airline publisher studio label multinational"
    ),
    "event": _words(
        "war revolution battle festival event movement crisis election championship tournament "
        "olympics pandemic epidemic disaster period era conflict uprising attack massacre expedition "
        "cup race ceremony celebration holiday"
    ),
    "thing": _words(
        "system currency cryptocurrency technology device machine software language element animal "
        "plant food dish drink instrument vehicle car phone computer platform app product theory "
        "concept tool material chemical planet star species disease drug sport protocol network "
        "website engine weapon mineral gas metal ship vessel liner boat submarine satellite moon comet "
        "asteroid galaxy creature"
    ),
}

# the kind's noun in descriptions when no category was kept ("the person born in ...")
KIND_NOUN = {
    "person": "person",
    "work": "work",
    "place": "place",
    "organisation": "organisation",
    "thing": "thing",
    "event": "event",
}
