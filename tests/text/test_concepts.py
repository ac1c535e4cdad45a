from __future__ import annotations

from typing import Any

from hanet.text.concepts import (STOPWORDS, ConceptVocab, caption_labels, concepts_from_doc,
                                 count_concepts, video_weights)
from hanet.text.nlp import lemma_of


def concepts(nlp: Any, text: str) -> tuple[list[str], list[str]]:
    return concepts_from_doc(nlp(text), lemma_of(nlp))


def test_stopwords_are_the_nltk_list() -> None:
    assert len(STOPWORDS) == 179
    assert {"is", "being", "has", "doing", "can", "will", "s", "t", "don't"} <= STOPWORDS
    assert not {"play", "man", "make", "put", "show", "front", "top"} & STOPWORDS


def test_concepts_follow_the_official_definition(nlp: Any) -> None:
    verbs, nouns = concepts(nlp, "two men are riding horses and the women watched them")
    assert verbs == ["ride", "watch"]  # "are" is a stopword; inflected verbs lemmatised
    assert nouns == ["man", "horse", "woman"]  # plural nouns lemmatised
    verbs, nouns = concepts(nlp, "a man's dog is running in the park")
    assert verbs == ["run"] and nouns == ["man", "dog", "park"]  # "'s" is not a concept


def test_base_forms_are_kept_as_written(nlp: Any) -> None:
    verbs, nouns = concepts(nlp, "people like to dance")
    assert "dance" in verbs  # tag VB: kept verbatim
    assert nouns == ["people"]


def test_vocab_order_and_official_tie_break() -> None:
    vocab = ConceptVocab.build({"play": 5, "cook": 2, "run": 2, "ask": 2, "sing": 1}, 4)
    assert vocab.concepts == ["play", "run", "cook", "ask"]  # ties: reverse alphabetical
    assert vocab.counts == [5, 2, 2, 2]
    assert vocab.ids(["sing", "run", "play", "run"]) == [1, 0, 1]
    assert ConceptVocab.from_json(vocab.to_json()).concepts == vocab.concepts
    assert vocab.to_json()["concepts"]["run"] == {"id": 1, "count": 2}


def test_labels_and_weights() -> None:
    vocab = ConceptVocab.build(count_concepts([["play", "play", "cook"], ["run"]]), 10)
    per_caption = [["play", "cook", "play"], ["play"], ["zzz"], []]
    assert vocab.concepts == ["play", "run", "cook"]
    assert caption_labels(vocab, per_caption) == [[0, 2, 0], [0], [], []]  # repeats kept
    weights = video_weights(vocab, [["play"], ["play"], ["play", "cook"], ["cook", "run"]])
    # play 3x, cook 2x, run 1x over the video: count / max rounded to 2 decimals
    assert weights == {"0": 1.0, "2": 0.67, "1": 0.33}
    assert list(weights) == ["0", "2", "1"]  # ordered by weight, then id, descending
    assert video_weights(vocab, [[], ["zzz"]]) == {}


def test_pos_assigner_agrees_with_the_attribute_ruler(nlp: Any) -> None:
    import spacy

    from hanet.text.nlp import DEFAULT_MODEL

    full = spacy.load(DEFAULT_MODEL, exclude=["ner"])  # the ruler itself, enabled
    assert "hanet_pos" in nlp.pipe_names and "attribute_ruler" not in nlp.pipe_names
    captions = ["there is a man singing", "a man who has a dog does not like it",
                "he's been cooking and she did her homework", "both men are singing loudly",
                "all the people that were there", "something happens while they have fun",
                "do it again", "it ain't good", "a woman is explaining how to make a cake",
                "A Man  plays!  ", "let's go", "the one which is red"]
    for ours, theirs in zip(nlp.pipe(captions), full.pipe(captions)):
        assert [t.pos_ for t in ours] == [t.pos_ for t in theirs], ours.text
