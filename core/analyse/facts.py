"""What an answer states, read without a model: the facts the meaning guard compares.

Sentence embeddings see "The capital is Sydney." and "The capital is Canberra." as
near twins, and "42" and "Forty-two." as strangers. So each answer is also read for:
- its kind: a refusal ("I can't help with that") or a non-answer ("I don't know");
- its polarity: a leading yes or no, hedges included ("Probably not" is no);
- its quantities (numbers, measurements, dates; see `quantities`) and the one it gives
  as the answer (after "Answer:", the only one, or the last of a worked answer);
- its names: capitalised words (and words that are capitalised elsewhere in the same
  set of answers), the first of them being the answer ("Armstrong, with Aldrin...");
- the words it denies ("a mammal, not a fish") and the words it asserts.
Words and numbers of the prompt frame every answer, so they never tell answers apart,
with one exception: a short answer that is nothing but a name from the prompt ("Kenya"
to "What is the capital of Kenya?") names that entity as its answer, and differs from
an answer naming another ("Nairobi").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from core.analyse import quantities
from core.analyse.quantities import Quantity

# --- cleaning: the form of an answer, not what it says --------------------------------

# A base model goes on to the next question: "Rome.\n\nQuestion: What is the capital of Germany?"
_CONTINUATION = re.compile(r"\n\s*(?:Q|Question|Human|User)\s*\d*\s*[:.]", re.I)
_FENCE = re.compile(r"```[\w+-]*\n?(.*?)(?:```|$)", re.S)
_MARKUP = re.compile(r"\*\*|__|`")
_BULLET = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+(?=\S)", re.M)
_EMPTY_ANSWER = re.compile(r"\s*(?:final answer|answer)\s*:\s*$", re.I)
# "Answer: 80", "The answer is Rome", "Final answer: 42": what follows is the answer.
ANSWER_MARKER = re.compile(r"(?:\bfinal answer\b|\banswer\b)\s*:\s*|\bthe (?:final |correct )?answer is\s*:?\s*", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")


def clean(text: str) -> str:
    """The answer without its wrapping: markdown, a base model's next question or
    trailing "Answer:", more facts it goes on to list, a sentence it trails off in."""
    text = (text or "").strip()
    match = _CONTINUATION.search(text)
    if match and match.start() > 0:
        text = text[:match.start()]
    text = _FENCE.sub(lambda m: m.group(1), text)
    text = _MARKUP.sub("", text)
    text = _strip_enumerators(text)
    text = _BULLET.sub("", text)
    text = _EMPTY_ANSWER.sub("", text).strip()
    spans = sentence_spans(text)
    if len(spans) > 1:
        # A base model listing more facts repeats the first sentence's opening:
        # "the square root of 144 is 12. the square root of 121 is 11."
        opening = _opening(text[slice(*spans[0])])
        for k in range(1, len(spans)):
            if opening and _opening(text[slice(*spans[k])]) == opening:
                text, spans = text[:spans[k - 1][1]], spans[:k]
                break
    if len(spans) > 1:
        last = text[slice(*spans[-1])]
        if len(last.split()) >= 4 and not re.search(r"[.!?)\]\"'`]$", last) and not ANSWER_MARKER.search(last):
            text = text[:spans[-2][1]]  # trailing off mid-sentence
    return text.strip()


_ENUMERATOR = re.compile(r"(?<![\w.,])(\d{1,2})[.)]\s+(?=[^\W\d])")


def _strip_enumerators(text: str) -> str:
    """"1. Mercury 2. Venus 3. Earth" on one line: the 1, 2, 3 count items, they are no answer."""
    found = list(_ENUMERATOR.finditer(text))
    if len(found) >= 2 and [int(m.group(1)) for m in found] == list(range(1, len(found) + 1)):
        for match in reversed(found):
            text = text[:match.start()] + text[match.end():]
    return text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if text[start:match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _opening(sentence: str) -> tuple[str, ...]:
    words = re.findall(r"\w+", sentence.lower())
    return tuple(words[:3]) if len(words) >= 5 else ()


def split_sentences(text: str) -> list[str]:
    return [text[start:end].strip() for start, end in sentence_spans(text)]


def answer_part(text: str) -> str | None:
    """What follows the last "Answer:" / "The answer is" / "Final answer", if anything."""
    matches = list(ANSWER_MARKER.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():].strip()
    rest = split_sentences(rest)[0] if rest else ""
    return rest.rstrip(".!") or None


def fold(text: str) -> str:
    """Lowercase without accents: "Brasília" and "brasilia" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --- kinds: refusals and non-answers ---------------------------------------------------

_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am)? (?:sorry|afraid)\b.{0,40}\b(?:can(?:'|no)t|won't|unable|not able|only)"
    r"|i(?:'m| am)? (?:can(?:'|no)?t|cannot|won't|will not|unable to|not able to"
    r"|must decline to|have to decline to|can only|only)\s+(?:\w+\s+){0,2}?"
    r"(?:help|assist|provide|answer|give|share|comply|support|discuss|do that|tell)"
    r"|as an ai\b|\bai language model\b|outside (?:what|the scope|my)|not something i can"
    r"|i (?:must|have to) decline)",
    re.I,
)
_NON_ANSWER = re.compile(
    r"^(?:(?:hmm+|um+|well|sorry|honestly)[,.]?\s+)?(?:"
    r"i(?:'m| am) not (?:sure|certain)|not (?:sure|certain)|i (?:don't|do not|dont) know|no idea|"
    r"i have no idea|unsure|unknown|n/?a|none|no answer|i can't say|hard to say|it depends|[-–—?.]+"
    r")(?:\b|$)",
    re.I,
)


def answer_kind(text: str) -> str | None:
    """"refusal" (declines to answer), "non-answer" (engages but says nothing), or None."""
    return _kind(clean(text))


def _kind(body: str) -> str | None:
    if not body or re.fullmatch(r"[\s\W]*", body):
        return "non-answer"
    opening = " ".join(split_sentences(body)[:2])
    if _REFUSAL.search(fold(opening).replace("’", "'")):
        return "refusal"
    words = re.findall(r"[\w'/]+", body)
    if len(words) <= 8 and _NON_ANSWER.search(body.replace("’", "'")):
        return "non-answer"
    return None


# --- polarity --------------------------------------------------------------------------

_INTERJECTION = r"^(?:(?:well|hmm+|oh|um+|so|honestly|actually|sure),?\s+)?"
_YES = re.compile(_INTERJECTION + r"(?:yes|yeah|yep|yup|correct|true|indeed|i (?:believe|think) so|"
                  r"absolutely|definitely|certainly|of course)\b", re.I)
_NO = re.compile(_INTERJECTION + r"(?:no|nope|nah|not|never|false|incorrect|"
                 r"i (?:don't|do not) (?:think|believe) so|i doubt it|that's a myth|it's a myth)\b", re.I)


def polarity(text: str) -> int:
    """+1 for an answer that opens with yes (hedged or not), -1 for no, 0 otherwise."""
    first = re.split(r"[.;:!?\n]", text.strip().replace("’", "'"), maxsplit=1)[0]
    first = re.sub(r"^(?:probably|generally|technically|almost certainly|certainly|definitely|mostly|"
                   r"usually|well|hmm|i'd say|i would say)[,\s]+", "", first.strip(), flags=re.I)
    if re.match(r"^no (?:idea|answer)\b", first, re.I):
        return 0
    if _NO.match(first):
        return -1
    if _YES.match(first):
        return 1
    return 0


# --- words: names, denied and asserted terms --------------------------------------------

# scikit-learn's list, less the words that can carry an answer ("fire", "even", "thick").
_CONTENT = {"bill", "fire", "thick", "thin", "system", "side", "even", "full", "empty", "cry", "serious", "sincere",
            "top", "bottom", "front", "back", "move", "interest", "mill", "amount", "detail", "fill", "show", "find",
            "found", "call", "describe", "part", "name", "de", "con", "co", "first", "third", "last", "whole"}
_MORE_STOP_WORDS = {
    "it's", "i'm", "that's", "there's", "what's", "i", "i'd", "i've", "you're", "don't", "doesn't", "isn't",
    "aren't", "wasn't", "weren't", "can't", "won't", "didn't", "also", "just", "like", "really", "probably",
    "generally", "technically", "usually", "roughly", "approximately", "exactly", "answer", "yes", "yeah",
    "nope", "sure", "okay", "ok", "think", "believe", "known", "called", "use", "using", "mt", "st",
}
_NEGATORS = {"not", "no", "never", "n't", "cannot", "nor", "neither", "without"}
_ARTICLES = {"a", "an", "the", "be", "been", "being", "is", "are", "was", "were", "do", "does", "did", "really",
             "actually", "necessarily"}
# Words that open sentences without being names ("Because", "Use", "However").
_MORE_STARTERS = {
    "because", "however", "since", "although", "though", "use", "yes", "no", "sure", "well", "okay", "hmm",
    "first", "then", "so", "therefore", "thus", "finally", "note", "answer", "question", "probably",
    "generally", "technically", "maybe", "perhaps", "about", "around", "approximately", "roughly",
    "definitely", "certainly", "absolutely", "let's", "let", "many", "most", "some", "dividing", "converting",
    "multiplying", "subtracting", "adding", "removing", "insert", "speed", "seasons", "frozen",
}


@functools.cache
def stop_words() -> frozenset:
    """Words that carry no fact. Imported on first use: scikit-learn is slow to import,
    and pages that only show a run should not pay for it."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return (frozenset(ENGLISH_STOP_WORDS) - _CONTENT) | _MORE_STOP_WORDS


@functools.cache
def _starters() -> frozenset:
    return stop_words() | _MORE_STARTERS


_ALIASES = {"mt": "mount", "st": "saint", "usa": "us", "u.s.": "us", "uk": "britain"}
_DEMONYM = re.compile(r"(?:ish|ese|ian|an|ch|ic|i)$")
_TOKEN = re.compile(r"[A-Za-zÀ-ÿ][\w'’À-ÿ.-]*[\w]|[A-Za-zÀ-ÿ]|n't|\d[\w.,/-]*", re.U)


@functools.lru_cache(maxsize=65536)  # a run's answers repeat their words: stem each once
def stem(word: str) -> str:
    """A light stemmer: possessive, plural and a few endings, so "whales" meets "whale"."""
    word = fold(word).strip("'’.-").replace("’", "'")
    word = _ALIASES.get(word, word)
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 5 and word.endswith("eous"):  # "gaseous" meets "gas"
        return word[:-4]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and re.search(r"(?:ses|xes|ches|shes|zes)$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str) -> list[tuple[str, str, bool]]:
    """(word as written, stem, starts a sentence) for every word."""
    out, start, previous_end = [], True, 0
    for match in _TOKEN.finditer(text):
        if out and re.search(r"[.!?:;\n]", text[previous_end:match.start()]) or (out and out[-1][0][-1:] in ".!?"):
            start = True
        word = match.group(0)
        out.append((word, stem(word), start))
        start, previous_end = False, match.end()
    return out


def _is_capital(word: str) -> bool:
    return word[:1].isupper() or (len(word) > 1 and word.isupper())


def name_vocabulary(texts: list[str]) -> frozenset:
    """Stems that any answer in the set writes as a name: capitalised mid-sentence, or a
    capitalised answer on its own ("Hydrogen."). "hydrogen" then counts as a name in the
    answers that write it in lower case."""
    vocabulary = set()
    for text in texts:
        words = tokens(clean(text))
        short = len(words) <= 3
        for word, stemmed, first in words:
            if _is_capital(word) and stemmed not in stop_words() and not word[:1].isdigit():
                if not first or short or stemmed not in _starters():
                    vocabulary.add(stemmed)
    return frozenset(vocabulary)


@dataclass(frozen=True)
class Facts:
    kind: str | None = None
    polarity: int = 0
    quantities: tuple[Quantity, ...] = ()
    stated: Quantity | None = None
    stated_bare: bool = False          # the stated number is the whole answer ("80", "Answer: 80")
    is_list: bool = False              # three or more items: compared as a set
    names: frozenset = frozenset()
    main: frozenset = frozenset()      # the first name: the answer itself
    items: frozenset = frozenset()     # list items, when is_list
    negated: frozenset = frozenset()
    asserted: frozenset = frozenset()
    arguments: frozenset = frozenset()  # keyword arguments in code: "sorted(xs, reverse=True)"
    is_code: bool = False              # numbers and names in code are arguments, not the answer
    words: tuple[str, ...] = field(default=(), repr=False)  # stems in order, for the template rule
    core: str = ""                     # the cleaned text, folded: equal cores say the same thing


_YES_NO_QUESTION = re.compile(r"^(?:is|are|was|were|do|does|did|can|could|will|would|has|have|had|should|must)\b",
                              re.I)


@dataclass(frozen=True)
class Context:
    """What the prompt itself says: its numbers and words frame the answers. For a
    yes/no question ("Is zero an even number?"), `predicate` holds the words after its
    subject: an answer that asserts one says yes ("Zero is even."), one that denies one
    says no ("Zero isn't even.")."""
    numbers: tuple[Quantity, ...] = ()
    words: frozenset = frozenset()
    vocabulary: frozenset = frozenset()
    predicate: frozenset = frozenset()
    names: frozenset = frozenset()  # the prompt's own names ("Kenya" in "the capital of Kenya?")

    @classmethod
    def of(cls, prompt: str, answers: list[str] = ()) -> "Context":
        prompt = prompt or ""
        words = frozenset(s for _, s, _ in tokens(prompt) if s not in stop_words())
        questions = [q for q in split_sentences(prompt.replace("?", "?\n")) if q.endswith("?")]
        predicate = frozenset()
        if questions and _YES_NO_QUESTION.match(questions[-1]) and not re.search(r"\bor\b", questions[-1], re.I):
            content = [s for _, s, _ in tokens(questions[-1]) if s not in stop_words()]
            predicate = frozenset(content[1:])
        names = frozenset(stemmed for word, stemmed, first in tokens(prompt)
                          if _is_capital(word) and not word[:1].isdigit() and stemmed not in stop_words()
                          and (not first or stemmed not in _starters()))
        return cls(tuple(quantities.read(prompt)), words, name_vocabulary(list(answers)) - words, predicate, names)


# Facts are immutable and a run's answers repeat across reruns (a new threshold, another
# reviewer's page): reading one is the largest part of clustering a run (bench/bench_team.py).
@functools.lru_cache(maxsize=200_000)
def read(text: str, context: Context = Context()) -> Facts:
    """The facts of one answer."""
    cleaned = clean(text)
    kind = _kind(cleaned)
    body = quantities.words_to_digits(cleaned)
    marked = answer_part(body)
    focus = marked or body
    everywhere = quantities.read(body)
    found = [q for q in everywhere if not _in_context(q, context)]
    in_focus = [q for q in quantities.read(focus) if not _in_context(q, context)] if marked else found
    is_list = _is_list(focus, in_focus)
    stated, bare = _stated(focus, in_focus, marked is not None, is_list)
    # Words are read with every quantity masked: "°C" is no name, and numbers have their own rule.
    masked_body = _mask(body, everywhere)
    words = tokens(_mask(focus) if marked else masked_body)
    names, main = _names(words, context)
    items = _list_items(focus, context) if is_list else frozenset()
    # "No, a whale is..." answers the question; the "No" denies no word.
    negated, asserted, mixed = _negation(tokens(re.sub(r"\b(?:no|not|nope|never)\s*[,.;:!]", " ", masked_body,
                                                       flags=re.I)), context)
    code = _is_code(text or "")
    if code:  # the code itself, where every symbol counts: xs[:3] is not xs[3:]
        core = _code_of(text or "")
    else:
        kept = [s for _, s, _ in words if s not in {"a", "an", "the"}]
        core = " ".join(kept + sorted(_canonical(q) for q in in_focus))
    sign = polarity(body) if not kind else 0
    if not sign and not kind and context.predicate:
        if negated & context.words:
            sign = -1
        elif asserted & context.predicate and not mixed & context.words:
            sign = 1
    arguments = frozenset(f"{name}={value}".lower() for name, value in _KEYWORD_ARGUMENT.findall(text or ""))
    return Facts(kind=kind, polarity=sign, arguments=arguments, is_code=code, quantities=tuple(found), stated=stated,
                 stated_bare=bare, is_list=is_list, names=names, main=main, items=items, negated=negated,
                 asserted=asserted, words=tuple(s for _, s, _ in words), core=core)


# A keyword argument in a call changes what code does: sorted(xs) against sorted(xs, reverse=True).
_KEYWORD_ARGUMENT = re.compile(r"[(,]\s*([A-Za-z_]\w*)\s*=\s*([\w.]+|'[^']*'|\"[^\"]*\")(?=\s*[,)])")


# Backticks, a fence, a call or an index, or code operators.
_CODE = re.compile(r"`|[\w\])][(\[][^\s)\]]*[)\]]|=>|[!=]==?|::|->|\w\.\w+\(")


def _is_code(text: str) -> bool:
    return bool(_CODE.search(text))


def _code_of(text: str) -> str:
    """The code in an answer (fenced, in backticks, or all of it), without comments or spaces."""
    spans = [fenced or inline for fenced, inline in re.findall(r"```[\w+-]*\n?(.*?)```|`([^`]+)`", text, re.S)]
    code = "\n".join(spans) if spans else text
    code = re.sub(r"//.*|#\s.*", "", code)
    return re.sub(r"\s+", "", code).rstrip(";.")


def _mask(text: str, found: list[Quantity] | None = None) -> str:
    for q in reversed(quantities.read(text) if found is None else found):
        text = text[:q.start] + " # " + text[q.end:]
    return text


def _canonical(quantity: Quantity) -> str:
    return f"{quantity.dimension}:{quantity.values[0]:.6g}"


def _in_context(quantity: Quantity, context: Context) -> bool:
    return any(quantity.raw == c.raw or quantity.equals(c) for c in context.numbers)


def _is_list(text: str, found: list[Quantity]) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) >= 3 and all(len(line.split()) <= 12 for line in lines):
        return True  # one item a line, with or without a description
    separators = len(re.findall(r",|\band\b|\n|;", text))
    segments = _segments(text)
    return separators >= 2 and len(split_sentences(text.replace("\n", " "))) <= 2 and (
        len(found) >= 3 and all(q.dimension == "" for q in found)
        or len(segments) >= 3 and all(len(s.split()) <= 3 for s in segments))


def _segments(text: str) -> list[str]:
    text = re.sub(r"\([^)]*\)", " ", text)  # "(plasma is often called the fourth)" is an aside
    text = text.split(":", 1)[1] if ":" in text else text
    text = re.sub(r"^.*\b(?:are|is|include|were)\b", "", text, flags=re.I) if re.search(
        r"\b(?:are|is|include|were)\b", text) else text
    parts = re.split(r",|;|\n|\band\b|\bor\b", text)
    return [p.strip(" .!") for p in parts if p.strip(" .!")]


def _list_items(text: str, context: Context) -> frozenset:
    items = set()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) >= 3:
        # "Mercury – the closest planet": the item is the line's first word or name,
        # unless the line is short enough to be the item itself.
        for line in lines:
            head = re.split(r"\s[-–—:]\s|:\s|\(", line)[0]
            stems = [s for _, s, _ in tokens(head) if s not in stop_words() and s not in context.words]
            if stems:
                items.add(stems[-1])
        return frozenset(items)
    for segment in _segments(quantities.words_to_digits(text)):
        stems = [s for _, s, _ in tokens(segment) if s not in stop_words() and s not in context.words]
        if stems:
            items.add(stems[-1])
    return frozenset(items)


def _stated(text: str, found: list[Quantity], marked: bool, is_list: bool) -> tuple[Quantity | None, bool]:
    """The quantity given as the answer: the first after an answer marker, the only one,
    or in the last sentence that has one, the first after its last "is", "so", "=" ...
    ("10 outfield players plus a goalkeeper, so 11"; "... = 80 km/h")."""
    if not found or is_list:
        return None, False
    bare = bool(re.fullmatch(r"[\s$€£~≈]*" + re.escape(found[0].text) + r"[\s.!]*", text))
    if marked or bare:
        return found[0], True
    if all(found[0].equals(q) for q in found[1:]):
        return found[0], False
    spans = [span for span in sentence_spans(text) if any(span[0] <= q.start < span[1] for q in found)]
    start, end = spans[-1]
    in_sentence = [q for q in found if start <= q.start < end]
    markers = [m.end() for m in _CONCLUSION.finditer(text, start, end)]
    for marker in reversed(markers):
        after = [q for q in in_sentence if q.start >= marker]
        if after:
            return after[0], False
    return in_sentence[0], False


_CONCLUSION = re.compile(r"\b(?:so|therefore|thus|hence|equals|gives|makes|is|are|was|leaves|out to)\b|=|≈", re.I)


def _names(words: list[tuple[str, str, bool]], context: Context) -> tuple[frozenset, frozenset]:
    """(every name, the first name run) in an answer; names of the prompt left out."""
    short = len(words) <= 3
    flags = []
    for k, (word, stemmed, first) in enumerate(words):
        is_name = stemmed not in context.words and not word[:1].isdigit() and stemmed not in stop_words() and (
            stemmed in context.vocabulary
            or (_is_capital(word) and (not first or short or stemmed not in _starters())))
        # "English author", "Scottish scientist": a capitalised adjective, not the answer.
        following = words[k + 1][0] if k + 1 < len(words) else ""
        adjective = is_name and _DEMONYM.search(stemmed) and following[:1].islower() \
            and following.lower() not in stop_words()
        flags.append((stemmed, is_name, bool(adjective)))
    names = frozenset(s for s, is_name, _ in flags if is_name)
    if not names and short:
        # Only a name of the prompt ("Kenya." to "the capital of Kenya?"): that entity is the
        # answer, and it must not pass for the name the other answers give.
        content = {stemmed for _, stemmed, _ in words if stemmed not in stop_words()}
        if content and content <= context.names:
            return frozenset(content), frozenset(content)
    # The answer is the first name after "is" / "was" ("The capital of Australia is
    # Canberra", "The first person on the Moon was Buzz Aldrin"), else the first name.
    # Both looked for in the first sentence: the rest adds detail.
    end = next((k for k, (_, _, first) in enumerate(words) if first and k > 0), len(words))
    copula = next((k for k, (word, _, _) in enumerate(words[:end]) if word.lower() in {"is", "are", "was", "were"}),
                  None)
    main = _first_run(flags[copula:end]) if copula is not None else set()
    if not main:
        main = _first_run(flags)
    return names, frozenset(main)


def _first_run(flags: list[tuple[str, bool, bool]]) -> set:
    run, started = set(), False
    for stemmed, is_name, adjective in flags:
        if is_name and not adjective:
            run.add(stemmed)
            started = True
        elif started and stemmed not in {"de", "da", "of", "von", "van", "la", "le", "del"}:
            break
    return run


def _negation(words: list[tuple[str, str, bool]], context: Context) -> tuple[frozenset, frozenset, frozenset]:
    """(denied, asserted, both) content words: "a whale is not a fish" denies "fish". A
    word both denied and asserted in one answer ("the Sun does not orbit the Earth; the
    Earth orbits the Sun") is left out of the first two."""
    denied, asserted, pending = set(), set(), False
    for word, stemmed, first in words:
        lower = word.lower().replace("’", "'")
        if lower in _NEGATORS or lower.endswith("n't"):
            pending = True
            continue
        if first:
            pending = False
        if stemmed in _ARTICLES:
            continue
        if stemmed in stop_words() or word[:1].isdigit():
            pending = False
            continue
        (denied if pending else asserted).add(stemmed)
        pending = False
    both = denied & asserted
    return frozenset(denied - both), frozenset(asserted - both), frozenset(both)
