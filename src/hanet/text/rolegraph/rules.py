"""The dependency rules: one spaCy parse -> predicates and their arguments (docs/prepare.md)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from hanet.text.rolegraph.words import (ADV_ROLE, AFTER_VERB, ANIMATE, BE, MARKER_ROLE, MISREAD_AS_ARGUMENT,
                                        NOMINAL_MODIFIERS, PREP_ROLE, QUANTITY_WORDS, REL_PRON_TAGS, SUBJ, SUBJPASS,
                                        TIME_NOUNS, UNACCUSATIVE, VERB_PREP_ROLE, VERB_SIDE_PREPS)
from hanet.text.rolegraph.graph import (FallbackNode, Frame)

# Bump when a rule changes: cached parses made by another version are then recomputed.
RULES_VERSION = "3"


# --------------------------------------------------------------------------- dependency rules
class DocRules:
    """Frames of one parsed caption. Token indices are spaCy's; spans are word indices."""

    def __init__(self, doc: Any, word_of: list[int | None], lemma: Callable[[Any], str],
                 verbs: frozenset[str] = frozenset()):
        self.doc = doc
        self.verbs = verbs
        self.tokens = list(doc)  # Doc iteration builds Token objects: do it once
        self.word_of = word_of
        self._lemma_fn = lemma
        self._lemmas: dict[int, str] = {}
        self._subjects: dict[int, tuple[str, list[int]] | None] = {}
        self._visiting: set[int] = set()
        self.headline: int | None = None  # a headline's verb (_headline_verb): its frame is read in order
        self.misread = self._misread_verbs()
        for i in self.misread:
            # retagged, so that the concepts, the lemma ("vanishes" -> "vanish", not the noun
            # rule's "vanishe") and every rule below read them as the verbs they are
            self.tokens[i].tag_ = "VBZ"
            self.tokens[i].pos_ = "VERB"

    # ---- verbs the tagger read as plural nouns
    def _misread_verbs(self) -> frozenset[int]:
        """Tokens tagged as plural nouns that are present-tense verbs after their subject.

        The small English model often reads "NOUN VERB-s" as a compound noun: "a girl sings"
        (girl/compound, sings/NNS), "a red square travels to the left and then it grows"
        (travels/NNS heading the sentence). A role labeller sees the verbs there, and so must
        we (else the action is lost from the role graph and the verb concepts). Read as a verb:
        a plural noun that has a subject (nominal subjects belong to verbs), or that carries a
        singular determiner ("a", "an": no plural noun takes one) with a modifier between them
        ("a [girl] sings", "a [red square] travels"), heading the sentence or hung on the verb
        after it; not after a word of quantity ("a few birds"). Then the bare plurals joined to
        a verb ("sings and dances"; "shoots a basketball and misses"). The caller retags them
        all as verbs.
        """
        found: set[int] = set()
        for t in self.tokens:
            if t.tag_ != "NNS" or self.word_of[t.i] is None:
                continue
            lefts = list(t.lefts)
            if any(w.lower_ in QUANTITY_WORDS for c in lefts for w in c.subtree):
                continue  # "a few birds", "a great many birds": a plural after all
            singular = any(c.dep_ == "det" and c.lower_ in ("a", "an") for c in lefts) and \
                any(c.dep_ in ("compound", "amod") for c in lefts)
            subject = any(c.dep_ in SUBJ for c in lefts)
            if t.dep_ == "ROOT":
                if singular or subject:
                    found.add(t.i)
            elif (singular or subject) and t.dep_ in MISREAD_AS_ARGUMENT and t.head.i > t.i \
                    and t.head.pos_ == "VERB":
                # "a tiny block drops then goes up": "a tiny block drops" read as the subject
                # of "goes", "first a shape rises and then it moves" as its complement
                found.add(t.i)
        verbs = [t for t in self.tokens if t.pos_ == "VERB" and t.dep_ not in ("aux", "auxpass") and t.lower_ not in BE]
        if not found and all(t.dep_ == "compound" for t in verbs):
            # no verb, or only one parsed as a noun's modifier ("man [interviews] soldiers"): a headline
            self.headline = verbs[0].i if verbs else self._headline_verb()
            if self.headline is not None and not verbs:
                found.add(self.headline)
        for t in self.tokens:  # conjuncts after their verb, in sentence order
            if t.i not in found and self._bare_plural_conjunct(t, found):
                found.add(t.i)
        return frozenset(found)

    def _headline_verb(self) -> int | None:
        """The verb of a caption written like a headline, which the tagger read as a plural noun:
        "woman in gray top talks to camera", "man interviews soldiers under a tent" (people's
        video queries often drop the articles, and the small model then finds no verb at all).
        In a caption with no verb, the first plural noun after a noun, not right after a
        determiner or a number, whose singular the lemmatiser knows as a verb, followed by what
        follows a verb (a preposition, a determiner, a pronoun, an adverb, a particle, a noun
        phrase); at the caption's end it stays a noun ("the kitchen counters")."""
        if not self.verbs:
            return None
        seen_noun = False
        for k, t in enumerate(self.tokens):
            if t.tag_ == "NNS" and seen_noun and self.word_of[t.i] is not None:
                w = t.lower_
                base = next((b for b in (w[:-1], w[:-2]) if w.endswith("s") and b in self.verbs), None)
                nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
                after_det = self.tokens[k - 1].tag_ in ("DT", "PRP$", "CD")  # "some greens", "two stores"
                if base and not after_det and nxt is not None and (nxt.tag_ in AFTER_VERB or nxt.is_punct):
                    return t.i
            if t.pos_ in ("NOUN", "PROPN"):
                seen_noun = True
        return None

    @staticmethod
    def _bare_plural_conjunct(tok: Any, verbs: set[int]) -> bool:
        # "dances" in "a girl sings and dances", "rotates in place" in "... travels to the right
        # and rotates in place": a plural with no noun modifier of its own, joined to a verb
        # ("a dot blinks then shrinks": "shrinks" hung on "blinks" as an unlabelled dependent)
        return (tok.dep_ in ("conj", "dep") and tok.tag_ == "NNS" and tok.head.i < tok.i
                and (tok.head.i in verbs or tok.head.pos_ == "VERB")
                and not any(c.dep_ in NOMINAL_MODIFIERS for c in tok.children))

    # ---- helpers
    def lemma(self, tok: Any) -> str:
        if tok.i not in self._lemmas:
            self._lemmas[tok.i] = self._lemma_fn(tok).lower()
        return self._lemmas[tok.i]

    def spans(self, token_ids: Iterable[int]) -> list[int]:
        return sorted({w for t in token_ids if (w := self.word_of[t]) is not None})

    def is_predicate(self, tok: Any) -> bool:
        if self.word_of[tok.i] is None or tok.lower_ in BE:
            return False
        # verbs the tagger read as plural nouns are retagged as verbs by now (_misread_verbs)
        return tok.pos_ == "VERB" and tok.dep_ not in ("aux", "auxpass") and self.lemma(tok) != "be"

    def is_passive(self, tok: Any) -> bool:
        return any(c.dep_ in ("auxpass", "nsubjpass", "csubjpass", "agent")
                   for c in tok.children)

    @staticmethod
    def subtree(tok: Any) -> list[int]:
        return [t.i for t in tok.subtree]

    def trim(self, tokens: list[int]) -> list[int]:
        """Sorted tokens without the conjunctions and punctuation at either end.

        A coordinated verb often leaves its "and" inside the previous object's subtree
        ("shoots [a basketball and] misses").
        """
        tokens = sorted(set(tokens))
        edge = ("cc", "punct")
        while tokens and self.tokens[tokens[-1]].dep_ in edge:
            tokens.pop()
        while tokens and self.tokens[tokens[0]].dep_ in edge:
            tokens.pop(0)
        return tokens

    def antecedent(self, noun: Any, clause: Any) -> list[int]:
        """The noun's phrase without the modifying clause: the contiguous part around it."""
        inside = {t.i for t in clause.subtree}
        keep = {t.i for t in noun.subtree} - inside
        lo = hi = noun.i
        while lo - 1 in keep:
            lo -= 1
        while hi + 1 in keep:
            hi += 1
        return list(range(lo, hi + 1))

    def adjust(self, role: str, pred: Any) -> str:
        """ARG0 -> ARG1 for intransitive unaccusative verbs ("the water is boiling")."""
        if role == "ARG0" and self.lemma(pred) in UNACCUSATIVE and \
                not any(c.dep_ == "dobj" for c in pred.children):
            return "ARG1"
        return role

    # ---- subjects, own or shared
    def subject(self, pred: Any) -> tuple[str, list[int]] | None:
        """(role, token ids) of the predicate's subject-like argument, inherited if needed."""
        if pred.i in self._subjects:
            return self._subjects[pred.i]
        if pred.i in self._visiting:  # a cycle cannot happen in a tree; be safe anyway
            return None
        self._visiting.add(pred.i)
        try:
            found = self._own_subject(pred) or self._inherited_subject(pred)
        finally:
            self._visiting.discard(pred.i)
        self._subjects[pred.i] = found
        return found

    def _own_subject(self, pred: Any) -> tuple[str, list[int]] | None:
        for c in pred.children:
            if c.dep_ in SUBJ and c.i in self.misread:
                # "[a tiny block drops] then goes up": the subject is the misread verb's
                shared = self.subject(c)
                return None if shared is None else (self.adjust("ARG0", pred), shared[1])
            if c.dep_ in SUBJ and not self._is_rel_pronoun(c, pred):
                return self.adjust("ARG0", pred), self.subtree(c)
            if c.dep_ in SUBJPASS and not self._is_rel_pronoun(c, pred):
                return "ARG1", self.subtree(c)
        # the parser hung the subject's words on the verb as a noun's modifiers ("a [red]
        # [square] travels", read as a plural noun; "a [square] expands", tagged a verb yet
        # parsed as a noun phrase): those before it, from the determiner on; a determiner
        # alone is no subject ("the dancing")
        words = [t for c in pred.lefts if c.dep_ in NOMINAL_MODIFIERS for t in self.subtree(c)]
        if len(words) >= 2 and any(c.dep_ == "det" for c in pred.lefts):
            return self.adjust("ARG0", pred), words
        return None

    def _inherited_subject(self, pred: Any) -> tuple[str, list[int]] | None:
        dep, head = pred.dep_, pred.head
        passive = self.is_passive(pred)
        if dep in ("acl", "relcl") and head.i != pred.i:
            tokens = self.antecedent(head, pred)
            if dep == "relcl":
                role = self._relative_role(pred)
                if role is None:  # "the food she made": the antecedent is the object
                    role = "ARG1" if self._own_subject(pred) or passive else "ARG0"
                return self.adjust(role, pred), tokens
            role = "ARG1" if passive or pred.tag_ == "VBN" else "ARG0"
            if any(c.dep_ == "aux" and c.tag_ == "TO" for c in pred.children) and \
                    any(c.dep_ == "dobj" for c in pred.children):
                return None  # "a knife to cut bread": the noun is not the cutter
            return self.adjust(role, pred), tokens
        governor = None
        if dep in ("conj", "advcl", "xcomp") and head.i != pred.i and head.pos_ in ("VERB", "AUX"):
            governor = head
        elif dep == "dep" and head.i < pred.i and head.pos_ in ("VERB", "AUX"):
            governor = head  # "a triangle slides up then flickers": an unlabelled second verb
        elif dep == "acomp" and pred.tag_ == "VBG" and head.lower_ in BE:
            governor = head  # "a star is [spinning] and then stands still": a progressive misparsed
        elif dep == "pcomp" and head.dep_ == "prep" and head.head.pos_ in ("VERB", "AUX"):
            governor = head.head
        if governor is None:
            return None
        if dep == "xcomp" and any(c.tag_ in ("WRB", "WP") for c in pred.children):
            return None  # "explains how to make a cake": whoever makes it is left open
        if dep == "xcomp":  # object control ("asks him to ...") else subject control
            obj = next((c for c in governor.children if c.dep_ in ("dobj", "dative")), None)
            if obj is not None:
                return ("ARG1" if passive else self.adjust("ARG0", pred)), self.subtree(obj)
        inherited = self.subject(governor)
        if inherited is None:
            return None
        gov_role, tokens = inherited
        own_aux = any(c.dep_ in ("aux", "auxpass") for c in pred.children)
        if passive or (dep == "conj" and gov_role == "ARG1" and pred.tag_ == "VBN"
                       and not own_aux and self.is_passive(governor)):
            return "ARG1", tokens
        if dep != "conj" and pred.tag_ == "VBN" and not own_aux:
            return "ARG1", tokens  # "sits, surrounded by ...": a participle of state
        return self.adjust("ARG0", pred), tokens

    @staticmethod
    def _is_rel_pronoun(tok: Any, pred: Any) -> bool:
        return pred.dep_ == "relcl" and (tok.tag_ in REL_PRON_TAGS or tok.lower_ == "that")

    def _relative_role(self, pred: Any) -> str | None:
        for c in pred.children:
            if self._is_rel_pronoun(c, pred):
                if c.dep_ in SUBJ:
                    return "ARG0"
                if c.dep_ in SUBJPASS or c.dep_ in ("dobj", "attr"):
                    return "ARG1"
        return None

    # ---- one predicate's arguments
    def headline_frame(self, pred: Any) -> Frame:
        """A headline verb's frame, read in word order (the parse hung its words elsewhere): the
        words before it are its subject; after it, a noun phrase is its object and each
        preposition starts an argument of its own ("man in black | talks | to camera | from his
        office")."""
        words = [t for t in self.tokens if self.word_of[t.i] is not None and not t.is_punct]
        before = [t.i for t in words if t.i < pred.i]
        args: list[tuple[str, list[int]]] = [(self.adjust("ARG0", pred), before)] if before else []
        current: tuple[str, list[int]] | None = None
        for t in (t for t in words if t.i > pred.i):
            if t.tag_ in ("IN", "TO") or current is None:
                role = (self.prep_role(pred, t) if t.tag_ in ("IN", "TO") else
                        self.adverb_role(t) if t.tag_ in ("RB", "RP") else "ARG1")
                current = (role, [])
                args.append(current)
            current[1].append(t.i)
        return [self.word_of[pred.i]], [(role, self.spans(tokens)) for role, tokens in args if tokens]  # type: ignore[list-item]

    def frame(self, pred: Any) -> Frame:
        if pred.i == self.headline:
            return self.headline_frame(pred)
        args: list[tuple[int, str, list[int]]] = []  # (first token, role, token ids)

        def put(role: str, tokens: list[int]) -> None:
            tokens = self.trim(tokens)
            if tokens:
                args.append((tokens[0], role, tokens))

        subj = self.subject(pred)
        if subj is not None:
            put(subj[0], subj[1])
        merged: set[int] = set()
        for c in pred.children:
            dep = c.dep_
            if c.i in self.misread:
                continue  # a predicate of its own ("[first a shape rises] and then it moves")
            if self._is_rel_pronoun(c, pred):
                role = "ARG1" if dep in SUBJPASS or dep in ("dobj", "attr") else \
                    self.adjust("ARG0", pred)
                put("R-" + role, self.subtree(c))
            elif dep in SUBJ or dep in SUBJPASS:
                continue  # taken by subject()
            elif dep == "agent":
                put("ARG0", self.subtree(c))
            elif dep == "dobj":
                if c.i in merged:
                    continue
                tokens, split = self.object_parts(pred, c)
                merged.update(tokens)
                put("ARG1", tokens)
                for prep in split:
                    put(self.prep_role(pred, prep), self.subtree(prep))
            elif dep in ("dative", "iobj"):
                put("ARG2", self.subtree(c))
            elif dep in ("attr", "acomp", "oprd"):
                put("ARG2", self.subtree(c))
            elif dep == "xcomp":
                put("ARG1" if c.pos_ in ("VERB", "AUX") else "ARG2", self.subtree(c))
            elif dep == "ccomp":
                put("ARG1", self.subtree(c))
            elif dep == "prep":
                put(self.prep_role(pred, c), self.subtree(c))
            elif dep == "advmod":
                if pred.dep_ == "relcl" and c.tag_ == "WRB":
                    put("R-" + ADV_ROLE.get(c.lower_, "ARGM-MNR"), [c.i])
                else:
                    put(self.adverb_role(c), self.subtree(c))
            elif dep == "npadvmod":
                put(self.npadvmod_role(c), self.subtree(c))
            elif dep == "neg":
                put("ARGM-NEG", [c.i])
            elif dep == "aux" and c.tag_ == "MD":
                put("ARGM-MOD", [c.i])
            elif dep == "advcl":
                put(self.advcl_role(c), self.subtree(c))
        args.sort(key=lambda a: a[0])
        out: list[tuple[str, list[int]]] = []
        verb_word = self.word_of[pred.i]
        for _, role, tokens in args:
            spans = [w for w in self.spans(tokens) if w != verb_word]
            if spans:
                out.append((role, spans))
        return [verb_word], out  # type: ignore[list-item]

    def object_parts(self, pred: Any, obj: Any) -> tuple[list[int], list[Any]]:
        """The object's tokens, and the prepositional phrases that belong to the verb.

        Two parser habits are undone here. A noun-noun object is sometimes read as two
        objects ("demonstrating [a yoga] [pose]"): adjacent objects are joined. A place,
        direction or time phrase after the object is usually hung on the object ("playing
        [a guitar on stage]"), where a role labeller gives the verb an ARGM-LOC: such phrases,
        when they end the object, go to the verb.
        """
        tokens = self.subtree(obj)
        nxt = [c for c in pred.children if c.dep_ == "dobj" and c.i > obj.i]
        if nxt and nxt[0].left_edge.i == obj.right_edge.i + 1:
            tokens += self.subtree(nxt[0])
            obj = nxt[0]
        split: list[Any] = []
        for prep in reversed(list(obj.rights)):
            if prep.dep_ != "prep" or prep.right_edge.i != max(tokens):
                break
            pobj = next((c for c in prep.children if c.dep_ == "pobj"), None)
            timed = pobj is not None and self.lemma(pobj) in TIME_NOUNS
            if prep.lower_ not in VERB_SIDE_PREPS and not timed:
                break
            split.append(prep)
            inside = {t.i for t in prep.subtree}
            tokens = [t for t in tokens if t not in inside]
        return tokens, split[::-1]

    def prep_role(self, pred: Any, prep: Any) -> str:
        word = prep.lower_
        obj = next((c for c in prep.children if c.dep_ == "pobj"), None)
        if obj is not None and self.lemma(obj) in TIME_NOUNS and word not in ("about", "of"):
            return "ARGM-TMP"
        verb = self.lemma(pred)
        if (verb, word) in VERB_PREP_ROLE:
            return VERB_PREP_ROLE[(verb, word)]
        if word == "with" and obj is not None and (
                self.lemma(obj) in ANIMATE or obj.pos_ in ("PROPN", "PRON")):
            return "ARGM-COM"
        if word == "by" and any(c.dep_ == "pcomp" for c in prep.children):
            return "ARGM-MNR"  # "by cutting it"
        return PREP_ROLE.get(word, "ARGM-ADV")

    @staticmethod
    def adverb_role(adv: Any) -> str:
        word = adv.lower_
        if word in ADV_ROLE:
            return ADV_ROLE[word]
        return "ARGM-MNR"

    def npadvmod_role(self, tok: Any) -> str:
        lemma = self.lemma(tok)
        if lemma in TIME_NOUNS:
            return "ARGM-TMP"
        if lemma == "home":
            return "ARGM-DIR"
        return "ARGM-ADV"

    @staticmethod
    def advcl_role(clause: Any) -> str:
        for c in clause.children:
            if c.dep_ == "mark":
                return MARKER_ROLE.get(c.lower_, "ARGM-ADV")
        if any(c.dep_ == "aux" and c.tag_ == "TO" for c in clause.children):
            return "ARGM-PRP"
        if clause.lower_ in MARKER_ROLE:
            return MARKER_ROLE[clause.lower_]
        return "ARGM-ADV"

    def frames(self) -> list[Frame]:
        return [self.frame(t) for t in self.tokens if self.is_predicate(t)]

    def fallback(self) -> list[FallbackNode]:
        """The official no-predicate nodes: noun chunks (or NN* words), then VB* words."""
        nodes: list[FallbackNode] = []
        for chunk in self.doc.noun_chunks:
            spans = self.spans(range(chunk.start, chunk.end))
            if spans:
                nodes.append(("NOUN", spans))
        if not nodes:
            nodes = [("NOUN", [w]) for t in self.tokens
                     if t.tag_.startswith("NN") and (w := self.word_of[t.i]) is not None]
        nodes += [("V", [w]) for t in self.tokens
                  if t.tag_.startswith("VB") and (w := self.word_of[t.i]) is not None]
        unique: list[FallbackNode] = []
        seen: set[tuple[str, tuple[int, ...]]] = set()
        for role, spans in nodes:
            if (role, tuple(spans)) not in seen:
                seen.add((role, tuple(spans)))
                unique.append((role, spans))
        return unique
