"""REAL-Prompt's class names: the official RELAXED rule of find_most_common_name
(github.com/shubhamprshr27/NeglectedTailsVLM, analysis/laion/laion_parser.py), worked by hand."""
import pytest

from featurestore.text.real_prompts import real_name, real_names


def test_a_word_subset_never_replaces_the_class_name():
    # "honda" is mentioned most, but its words are a strict subset of "honda accord"
    synonyms, counts = ["Honda Accord", "Honda", "Accord sedan"], [100, 1000, 500]
    assert real_name("Honda Accord", synonyms, counts) == "Honda Accord"
    # the running count moved to 1000, so "Accord sedan" (500) does not replace it either
    assert real_name("Honda Accord", synonyms, counts, strategy="strict") == "Honda"


def test_an_alternate_with_other_words_or_the_same_words_reordered_replaces_it():
    assert real_name("Honda Accord", ["Honda Accord", "2012 Honda Accord"], [10, 30]) == "2012 Honda Accord"
    assert real_name("Honda Accord Sedan", ["Honda Accord Sedan", "sedan, Honda Accord"], [1, 5]) == \
        "sedan, Honda Accord"
    assert real_name("cat", ["cat", "kitty"], [2, 5]) == "kitty"
    # ties keep the class name (an alternate must be mentioned strictly more often)
    assert real_name("cat", ["cat", "kitty"], [5, 5]) == "cat"


def test_real_names_of_every_class_and_unknown_strategy():
    assert real_names(["cat", "Honda Accord"], [["cat", "kitty"], ["Honda Accord", "Honda"]], [[1, 3], [2, 9]]) == \
        ["kitty", "Honda Accord"]
    from featurestore.errors import SourceError

    with pytest.raises(SourceError, match="strategy must be one of"):
        real_name("cat", ["cat"], [1], strategy="loose")
