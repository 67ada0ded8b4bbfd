"""When two answers mean the same: the labelled benchmark, each normalisation, each guard rule."""

import numpy as np
import pytest

from bench import bench_clusters
from core.analyse import embed, facts, meaning, quantities, second_opinion


def read_pair(a, b, context=""):
    return meaning.read_all([a, b], context)


def verdict(a, b, context=""):
    return meaning.compare(*read_pair(a, b, context))


# --- the benchmark, with floors measured on it ------------------------------------------
# Measured with MiniLM at the default threshold (0.70): dev ARI 0.833, heldout 0.761 (with q071,
# issue 15); false merges 34 and 23, of which answers stating different numbers or names: 0 and 6. The floors sit
# a little below (the ceilings a little above), so noise cannot fail them but a regression does.

@pytest.fixture(scope="module")
def benchmark():
    results = {}
    for split in bench_clusters.SPLITS:
        questions = bench_clusters.load(split)
        for method in ("minilm", "tfidf"):
            embedded, _ = bench_clusters.embed_all(questions, method)
            figures, _ = bench_clusters.evaluate(questions, method, meaning.DEFAULT_THRESHOLD, embedded)
            results[split, method] = figures
    return results


def test_the_benchmark_clusters_by_meaning(benchmark):
    dev, heldout = benchmark["dev", "minilm"], benchmark["heldout", "minilm"]
    assert dev["all"]["ari"] >= 0.82
    assert heldout["all"]["ari"] >= 0.73
    assert dev["all"]["fact_merges"] == 0
    assert heldout["all"]["fact_merges"] <= 6
    assert dev["all"]["false_merges"] <= 36 and heldout["all"]["false_merges"] <= 25
    # The kinds of error the issue named, on dev: numbers in words, refusals, added
    # detail, short answers against sentences.
    for category in ("numbers-words", "units", "dates", "lists-order", "hedged-yes-no", "short-vs-sentence",
                     "wrong-entity", "base-model-style"):
        assert dev[category]["ari"] >= 0.95, category
    assert dev["refusals"]["ari"] >= 0.95 and dev["extra-detail"]["ari"] >= 0.85
    # The model still earns its place over character n-grams.
    assert dev["all"]["ari"] > benchmark["dev", "tfidf"]["all"]["ari"]


# --- normalisation ------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("It's forty-two.", "It's 42."),
    ("forty two", "42"),
    ("one hundred and five degrees", "105 degrees"),
    ("Twenty-four", "24"),
    ("which one is it", "which one is it"),  # a lone "one" is a pronoun
    ("1.08 billion", "1.08 billion"),        # the number reader multiplies scale words out
])
def test_numbers_in_words_become_digits(text, expected):
    assert quantities.words_to_digits(text) == expected


def equal(a, b):
    (qa,), (qb,) = quantities.read(a), quantities.read(b)
    return qa.equals(qb)


@pytest.mark.parametrize("a,b", [
    ("42", "42.0"), ("Forty-two", "42"), ("100 °C", "212°F"), ("100 degrees Celsius", "373.15 K"),
    ("42.195 km", "26.2 miles"), ("26 miles 385 yards", "42,195 metres"), ("About 42 km", "42.195 km"),
    ("299,792,458 m/s", "3 × 10^8 m/s"), ("299 792 458 metres per second", "About 1.08 billion km/h"),
    ("c ≈ 3.00e8 m/s", "Roughly 186,000 miles per second"), ("$30.00", "thirty dollars"),
    ("1 atm", "14.7 psi"), ("8,849 m", "8,848.86 m"),
])
def test_the_same_quantity_in_other_units_or_spellings_is_equal(a, b):
    assert equal(a, b) is True


@pytest.mark.parametrize("a,b", [
    ("42", "24"), ("1969", "1968"), ("100 degrees Fahrenheit", "100 °C"), ("26.2 kilometers", "26.2 miles"),
    ("About 300,000 m/s", "299,792,458 m/s"), ("10 grams", "1 gram"), ("12", "12.5"),
])
def test_different_quantities_are_not_equal(a, b):
    assert equal(a, b) is False


def test_quantities_of_different_kinds_do_not_compare():
    assert equal("20 minutes", "1969") is None
    assert equal("80 km/h", "80 kg") is None


@pytest.mark.parametrize("text", ["July 20, 1969", "20 July 1969.", "1969-07-20", "20/07/1969",
                                  "Sunday, July 20th, 1969", "the 20th of July, 1969", "Jul. 20 1969",
                                  "1969/07/20", "20-Jul-1969"])
def test_dates_in_any_format_are_one_date(text):
    (date,) = quantities.read(text)
    assert date.dimension == "date" and equal(text, "July 20, 1969")


def test_days_without_a_year_compare_with_each_other_only():
    assert equal("July 4", "the 4th of July") and not equal("July 4", "July 2")
    assert equal("July 4", "July 4, 1776") is None
    assert equal("on the twenty-first of July, 1969", "1969-07-21")


def test_enumerators_and_scale_words():
    assert facts.clean("1. Mercury 2. Venus 3. Earth") == "Mercury Venus Earth"
    assert quantities.words_to_digits("a hundred and a dozen") == "100 and 12"
    assert equal("minus 40 °C", "-40 ºF")


def test_dates_differ_by_a_day_or_a_year_and_ambiguous_ones_match_both_readings():
    assert not equal("July 20, 1969", "July 20, 1968") and not equal("July 4, 1776", "July 2, 1776")
    assert equal("On the Fourth of July, 1776", "1776-07-04")
    assert equal("03/04/2020", "March 4, 2020") and equal("03/04/2020", "3 April 2020")


@pytest.mark.parametrize("text,expected", [
    (" Rome.\n\nQuestion: What is the capital of Germany?\nAnswer: Berlin", "Rome."),
    (" 12.\nAnswer:", "12."),
    ("**42**", "42"),
    ("```python\nxs = sorted(xs)\n```", "xs = sorted(xs)"),
    ("- Red\n- Green\n- Blue", "Red\nGreen\nBlue"),
    (" the square root of 144 is 12. the square root of 121 is 11. the square root of",
     "the square root of 144 is 12."),
    (" Venice. Venice is a city in Italy that is famous for its canals and", "Venice."),
])
def test_clean_removes_the_wrapping_of_an_answer(text, expected):
    assert facts.clean(text) == expected


def test_the_answer_after_a_marker():
    assert facts.answer_part("So the speed is 80 km/h.\nAnswer: 80") == "80"
    assert facts.answer_part("The answer is Rome") == "Rome"
    assert facts.answer_part("Final answer: 42.") == "42"
    assert facts.answer_part("No marker here") is None


def test_case_accents_plurals_and_possessives_fold_away():
    assert facts.stem("Brasília") == facts.stem("brasilia")
    assert facts.stem("Whales") == "whale" and facts.stem("gases") == "gas" and facts.stem("gaseous") == "gas"
    assert facts.stem("Earth's") == "earth" and facts.stem("Mt.") == "mount"


def test_normalised_forms_of_one_answer_agree():
    for a, b in [("The answer is 6.", "Six."), ("It's 42!", "**42**"), ("6 × 7 = 42.0", "Forty-two."),
                 ("100°C, i.e. 212 degrees Fahrenheit", "At sea level, water boils at 373.15 K."),
                 (" Rome, Italy\nAnswer:", "The answer is Rome")]:
        result = verdict(a, b, "What is it?")
        assert result.agreements and not result.conflicts, (a, b)


# --- kinds: refusals and non-answers -----------------------------------------------------

@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.", "As an AI language model, I cannot provide instructions for that.",
    "Sorry, I won't help with that request.", "I can't answer that.",
    "As a cooking assistant, I'm unable to answer geography questions.",
    "Sorry, that's outside what I can help with here.", "I can't assist with bypassing locks. Call a locksmith.",
])
def test_refusals_are_recognised(text):
    assert meaning.answer_kind(text) == "refusal"


@pytest.mark.parametrize("text", ["I don't know.", "I'm not sure.", "not sure", "N/A", "-", "Hmm, I'm not certain.",
                                  "I don't know the exact figure.", "No idea, sorry.", "   "])
def test_non_answers_are_recognised(text):
    assert meaning.answer_kind(text) == "non-answer"


@pytest.mark.parametrize("text", ["No.", "Canberra.", "You can't see it from the Moon.", "12.\nAnswer:",
                                  "I believe so, yes.", "Not in the air."])
def test_real_answers_have_no_kind(text):
    assert meaning.answer_kind(text) is None


def test_refusals_join_each_other_and_nothing_else():
    assert verdict("I'm sorry, I can only help with cooking questions.", "I can't answer that.").agreements
    assert verdict("I can't help with that.", "I don't know.").conflicts == ["refusal vs non-answer"]
    assert verdict("I can't help with that.", "About 10 grams.").conflicts == ["refusal vs answer"]


# --- the guard: conflicts in the same role, not added detail ------------------------------

def test_different_numbers_as_the_answer_conflict():
    assert verdict("It's forty-two.", "It's twenty-four.").conflicts == ["numbers 42 vs 24"]
    assert verdict("Each team fields 11 players.", "Ten.").conflicts
    # the number after "so" is the answer; the working before it is not
    assert verdict("10 outfield players plus a goalkeeper, so 11 in total.", "11").agreements
    assert verdict("10 outfield players plus a goalkeeper, so 11 in total.", "Ten.").conflicts


def test_numbers_from_the_prompt_do_not_count():
    result = verdict("6 times 7 is 42.", "The product of 6 and 7 is forty two.", "What is 6 times 7?")
    assert result.agreements and not result.conflicts


def test_a_worked_answer_is_judged_by_its_final_answer():
    question = "A train travels 60 km in 45 minutes. What is its average speed in km/h?"
    right = "45 minutes is 0.75 hours. So the speed is 60 / 0.75 = 80 km/h.\nAnswer: 80"
    also_right = "In one quarter of an hour the train covers 20 km. The average speed is 80 km/h."
    wrong = "Then 60 divided by 0.75 equals 75. So the average speed is 75 km/h. Answer: 75"
    assert verdict(right, also_right, question).agreements
    assert verdict(right, wrong, question).conflicts == ["numbers 80 vs 75"]


def test_different_dates_conflict():
    assert verdict("July 20, 1969", "Apollo 11 landed on July 20, 1968.").conflicts == [
        "dates July 20, 1969 vs July 20, 1968"]


def test_different_places_as_the_answer_conflict_but_added_detail_does_not():
    question = "What is the tallest mountain in the world?"
    assert verdict("Mount Everest.", "K2.", question).conflicts == ["names everest mount vs k2"]
    for detail in ["Mount Everest, in the Himalayas, at 8,849 m.", "Mt. Everest, known as Sagarmatha in Nepal.",
                   "The tallest mountain in the world is Mount Everest, on the border of Nepal and China."]:
        result = verdict("Everest", detail, question)
        assert result.agreements and not result.conflicts, detail
    # Without the prompt's help, the answer is the name after "is".
    assert verdict("The capital of Australia is Canberra.", "It's Canberra.").agreements
    assert verdict("The capital of Australia is Canberra.", "The capital of Australia is Sydney.").conflicts


def test_an_answer_that_only_names_an_entity_of_the_prompt_stays_apart():
    """The issue's hole: "France" to "capital of France?" sat in the "Paris" cluster, because
    the guard set every prompt word aside."""
    question = "What is the capital of France?"
    assert verdict("France", "Paris, France", question).conflicts == ["names france vs paris"]
    assert verdict("France.", "The capital of France is Paris.", question).conflicts
    assert verdict("France.", "france", question).agreements
    # A name of the prompt inside a longer answer is still only its frame.
    assert verdict("The capital of France is Paris.", "Paris.", question).agreements
    assert not verdict("Yes, Canberra.", "Yes.", "Is Canberra the capital of Australia?").conflicts
    texts = ["Paris", "Paris.", "Paris, France", "paris", "It is Paris!", "France"]
    labels, _ = meaning.cluster(texts, method="minilm", context=question)
    assert labels[-1] not in labels[:-1] and len(set(labels[:-1])) == 1


def test_the_first_name_is_the_answer_and_others_mentioned_in_passing_are_not():
    question = "Who was the first person to walk on the Moon?"
    armstrong = "It was Armstrong, with Aldrin following him about 20 minutes later."
    assert verdict(armstrong, "Neil Armstrong.", question).agreements
    assert verdict(armstrong, "The first person to walk on the Moon was Buzz Aldrin.", question).conflicts
    assert verdict("The capital city of Brazil is Brasília, not Rio.", "The capital of Brazil is Brasilia.").agreements
    assert verdict("The capital city of Brazil is Brasília, not Rio.", "The capital of Brazil is Rio.").conflicts


def test_a_capitalised_adjective_is_not_the_answer():
    assert verdict("The novel was written by the English author George Orwell.", "George Orwell.",
                   "Who wrote the novel 1984?").agreements


def test_lower_case_names_count_when_another_answer_capitalises_them():
    found = meaning.read_all([" the capital of italy is milan", "The answer is Rome", " Milan"],
                             "What is the capital of Italy?")
    assert meaning.compare(found[0], found[1]).conflicts
    assert meaning.compare(found[0], found[2]).agreements


def test_yes_and_no_conflict_whatever_the_hedge():
    for yes in ["Yes.", "I believe so, yes.", "Probably yes", "Technically yes: it develops from a flower."]:
        for no in ["No.", "Probably not.", "I don't think so.", "Nope", "Not in the air.", "Generally no."]:
            assert verdict(yes, no).conflicts == ["polarity yes vs no"], (yes, no)
    assert verdict("Yes, generally.", "Yes.").agreements


def test_a_yes_no_question_answered_by_a_statement():
    question = "Is zero an even number?"
    assert verdict("Zero is even.", "Yes.", question).agreements
    assert verdict("Zero isn't even.", "No.", question).agreements
    assert verdict("Zero is not an odd number; it is even.", "Zero is not an even number.", question).conflicts
    # "expand or contract" is a choice, not a yes/no question
    assert not verdict("It expands.", "It contracts.", "Does water expand or contract when it freezes?").agreements


def test_a_word_asserted_by_one_answer_and_denied_by_the_other_conflicts():
    result = verdict("A whale is a fish, not a mammal.", "Whales are mammals, not fish.")
    assert result.conflicts and "one asserts, the other denies" in result.conflicts[0]
    # "No, a whale..." answers the question: it denies nothing.
    assert "whale" not in facts.read("No, a whale is not a fish.").negated


def test_lists_compare_as_sets():
    assert verdict("Red, green, and blue.", "- Blue\n- Red\n- Green").agreements
    assert verdict("Red, green, and blue.", "Red, yellow, and blue.").conflicts
    assert verdict("Solid, liquid, gas (plasma is often called the fourth).", "Solid, liquid, plasma.").conflicts
    assert verdict("2, 3, 5, 7, 11", "11, 7, 5, 3, 2").agreements
    assert verdict("two, three, five, seven, eleven", "1. 2\n2. 3\n3. 5\n4. 7\n5. 11").agreements
    assert verdict("2, 3, 5, 7, 11", "1, 2, 3, 5, 7").conflicts


def test_one_word_swapped_in_the_same_sentence_conflicts_unless_a_fact_agrees():
    question = "Which element has the atomic number 1?"
    assert verdict("The element with atomic number 1 is hydrogen.", "The element with atomic number 1 is lithium.",
                   question).conflicts == ["terms hydrogen vs lithium"]
    assert meaning.substitution(("it", "expand"), ("it", "contract")) is None  # nothing else in common
    swapped = ("the", "river", "flows", "north", "to", "the", "sea")
    assert meaning.substitution(swapped, ("the", "river", "flows", "south", "to", "the", "sea")) == ("north", "south")
    assert meaning.substitution(swapped, ("the", "river", "flows", "to", "the", "sea")) is None  # a word dropped
    assert meaning.substitution(swapped, ("the", "stream", "flows", "south", "to", "the", "sea")) is None  # two spans
    assert meaning.substitution(swapped, ("the", "river", "runs", "north", "into", "the", "sea")) is None
    assert verdict("The first person to walk on the Moon was Neil Armstrong.",
                   "The first man on the Moon was Neil Armstrong.").agreements


def test_the_rules_for_every_pair_agree_with_the_rules_for_one_pair():
    for question in bench_clusters.load("dev"):
        texts = list(dict.fromkeys(a["text"] for a in question["answers"]))
        found = meaning.read_all(texts, bench_clusters.context_of(question))
        conflict, agree = meaning.fact_matrices(found)
        for i in range(len(texts)):
            for j in range(len(texts)):
                if i == j:
                    continue
                pair = meaning.compare(found[i], found[j])
                assert conflict[i, j] == bool(pair.conflicts), (texts[i], texts[j])
                assert agree[i, j] == (bool(pair.agreements) and not pair.conflicts), (texts[i], texts[j])


# --- equivalent / explain ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cached_embedder():
    vectors = {}

    def embedder(texts, method):
        missing = [t for t in texts if (t, method) not in vectors]
        if missing:
            for text, row in zip(missing, embed.embed(missing, method)):
                vectors[text, method] = row
        return np.stack([vectors[t, method] for t in texts])
    return embedder


def test_equivalent_agrees_with_clustering_the_two_answers_alone(cached_embedder):
    checked = same = 0
    for question in bench_clusters.load("dev"):
        context = bench_clusters.context_of(question)
        texts = list(dict.fromkeys(a["text"] for a in question["answers"]))
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                if embed.normalise(a) == embed.normalise(b):
                    continue
                labels, _ = meaning.cluster([a, b], method="minilm", context=context, embedder=cached_embedder)
                pair = meaning.equivalent(a, b, context=context, method="minilm", embedder=cached_embedder)
                assert pair.same == (labels[0] == labels[1]), (a, b, pair.reason)
                checked += 1
                same += pair.same
    assert checked > 1000 and 0 < same < checked


def test_explain_says_why():
    pair = meaning.explain("It's forty-two.", "It's twenty-four.", method="tfidf")
    assert not pair.same and pair.conflicts == ["numbers 42 vs 24"] and pair.reason.startswith("kept apart: numbers")
    assert pair.kinds == (None, None) and 0 <= pair.similarity <= 1
    pair = meaning.explain("I can't help with that.", "I won't help with that request.", method="tfidf")
    assert pair.same and pair.kinds == ("refusal", "refusal") and "both refusals" in pair.reason
    pair = meaning.explain("It expands.", "It gets bigger.", method="tfidf", threshold=0.99)
    assert not pair.same and "similarity" in pair.reason and not pair.conflicts


def test_the_exact_method_compares_normalised_text_only():
    assert meaning.equivalent("Paris.", "  paris", method="exact").same
    assert not meaning.equivalent("42", "forty-two", method="exact").same


# --- the second opinion: only near the threshold, only where no fact decides ---------------

def test_the_second_opinion_is_asked_only_about_undecided_pairs_near_the_threshold(cached_embedder):
    asked = []

    def opinion(pairs):
        asked.extend(pairs)
        return [True] * len(pairs)

    texts = ["It expands.", "It gets bigger.", "It's forty-two.", "It's twenty-four.", "I can't help with that."]
    vectors = cached_embedder(texts, "minilm")
    similarity = vectors @ vectors.T
    labels = meaning.cluster_vectors(vectors, 0.7, texts, second_opinion=opinion)
    for a, b in asked:
        i, j = texts.index(a), texts.index(b)
        assert abs(similarity[i, j] - 0.7) <= meaning.NEAR
        assert {a, b} <= {"It expands.", "It gets bigger."}  # numbers and refusals are decided by facts
    if asked:
        assert labels[0] == labels[1]  # the opinion "same" merged them


def test_the_llm_judge_caches_verdicts_and_counts_calls(store):
    calls = []

    def fake_completion(**kwargs):
        calls.append(kwargs)
        reply = "SAME" if "expands" in kwargs["messages"][0]["content"] else "DIFFERENT"
        return {"choices": [{"message": {"content": reply}}]}

    cache = {}
    pairs = [("It expands.", "It gets bigger."), ("It expands.", "It contracts.")]
    first = second_opinion.judge(pairs, model="openai/judge", question="Does water expand?", cache=cache,
                        complete=fake_completion)
    assert first.verdicts == [True, True] or first.verdicts[0] is True
    assert first.calls == 2 and len(cache) == 2
    again = second_opinion.judge([("It gets bigger.", "It expands.")], model="openai/judge", question="Does water expand?",
                        cache=cache, complete=fake_completion)
    assert again.calls == 0 and again.verdicts == [True] and len(calls) == 2
    assert first.cost_usd is None  # a fake model has no price: unknown, not 0
    assert second_opinion.parse("Different.") is False and second_opinion.parse("same") is True and second_opinion.parse("maybe") is None


# --- the part to compare ----------------------------------------------------------------------

@pytest.mark.parametrize("mode,text,expected", [
    ("whole", "Paris. It is big.", "Paris. It is big."),
    ("first-sentence", "Paris. It is big.", "Paris."),
    ("final-answer", "45 min is 0.75 h, so 60 / 0.75 = 80.\nAnswer: 80 km/h", "80 km/h"),
    ("final-answer", "The answer is Rome. Rome is in Italy.", "Rome"),
    ("final-answer", "It covers 20 km per quarter hour, 80 km per hour.", "80"),
    ("final-answer", "No number here", "No number here"),
    ("json:city", 'Sure: {"city": "Paris", "country": "France"}', "Paris"),
    ("json:result.items.1", '{"result": {"items": ["a", "b"]}}', "b"),
    ("json:city", "no json", "no json"),
    ("regex:capital is (\\w+)", "The capital is Paris.", "Paris"),
    ("regex:\\d+", "It is 42 or so", "42"),
    ("regex:zzz", "no match", "no match"),
])
def test_extract_the_part_that_matters(mode, text, expected):
    assert meaning.extract(text, mode) == expected


def test_bad_extract_modes_raise_one_line_errors():
    for mode in ["regex:(unclosed", "json:", "sentence", "regex:["]:
        with pytest.raises(ValueError) as error:
            meaning.check_extract_mode(mode)
        assert "\n" not in str(error.value)
    assert set(meaning.EXTRACT_MODES) == {"whole", "first-sentence", "final-answer", "json:FIELD", "regex:PATTERN"}


def test_clustering_compares_the_extracted_part(cached_embedder):
    texts = ['{"city": "Paris", "note": "a long note about the weather"}', '{"city": "Paris", "note": "short"}',
             '{"city": "Lyon", "note": "a long note about the weather"}']
    labels, _ = meaning.cluster(texts, method="minilm", embedder=cached_embedder, extract_mode="json:city")
    assert labels[0] == labels[1] != labels[2]


def test_code_with_different_keyword_arguments_conflicts():
    assert verdict("sorted(xs, reverse=True)", "`sorted(xs)`").conflicts == ["code arguments reverse=true vs -"]
    assert not verdict("`xs.sort(reverse=True)`", "sorted(xs, reverse=True)").conflicts


def test_in_code_a_shared_number_is_an_argument_not_the_answer():
    assert not verdict("`xs[2]`", "`xs[:2]`").agreements           # same number, different code
    assert verdict("Use slicing: `s[::-1]`.", "s[::-1]").agreements  # the same code, in other words
    assert verdict("arr.includes(x)  // true if x is in the array", "`arr.includes(x)`").agreements
