"""The word tables the dependency rules consult (prepositions, verb classes, time nouns, ...)."""

from __future__ import annotations




# --------------------------------------------------------------------------- word tables
BE = frozenset(["be", "is", "are", "was", "were", "been", "being", "am", "'s", "'re", "'m"])

PREP_ROLE = {
    **dict.fromkeys(["in", "on", "at", "inside", "near", "under", "underneath", "beneath",
                     "behind", "beside", "besides", "between", "among", "amongst", "above",
                     "below", "within", "outside", "atop", "against", "by", "opposite", "amid",
                     "upon", "alongside", "next", "beyond", "aboard"], "ARGM-LOC"),
    **dict.fromkeys(["into", "onto", "to", "toward", "towards", "through", "across", "along",
                     "down", "up", "out", "over", "from", "off", "past", "via", "throughout",
                     "around", "away", "round"], "ARGM-DIR"),
    **dict.fromkeys(["during", "before", "after", "until", "till", "since", "while"],
                    "ARGM-TMP"),
    **dict.fromkeys(["like", "without", "with", "unlike"], "ARGM-MNR"),
    **dict.fromkeys(["for"], "ARGM-PRP"),
    **dict.fromkeys(["about", "of", "regarding"], "ARG1"),
    **dict.fromkeys(["as"], "ARGM-PRD"),
    **dict.fromkeys(["because", "due"], "ARGM-CAU"),
}

# Verb classes whose prepositional phrases are numbered arguments in PropBank frames.
PLACE = frozenset("""put place add insert pour drop dip stuff load set lay spread sprinkle
    transfer attach apply tuck throw toss stick plug hang layer pack inject squeeze spoon scoop
    arrange store lower""".split())
GIVE_TALK = frozenset("""give hand pass send serve feed offer sell deliver throw toss kick
    show present introduce explain describe say tell talk speak sing read reply respond teach
    demonstrate announce report mention chat shout yell whisper write sign wave point
    propose bow""".split())
LOOK_AT = frozenset("""look stare glance gaze peer laugh smile yell shout scream bark point
    aim shoot grin frown glare wink""".split())
SEEK = frozenset("look search wait ask prepare shop hunt reach pay apply audition".split())
CHANGE = frozenset("""turn change transform convert cut slice chop break divide split fold
    shape form roll mold grind crush blend mash make""".split())
TAKE = frozenset("take remove get pull grab pick buy steal borrow receive".split())
FILL = frozenset("""fill cover decorate top coat garnish stuff load sprinkle season spray
    replace provide""".split())
WORK_ON = frozenset("work focus comment concentrate rely depend".split())

VERB_PREP_ROLE: dict[tuple[str, str], str] = {}
for _v in PLACE:
    for _p in ("in", "into", "on", "onto", "to", "inside", "over", "under"):
        VERB_PREP_ROLE[(_v, _p)] = "ARG2"
for _v in GIVE_TALK:
    VERB_PREP_ROLE[(_v, "to")] = "ARG2"
for _v in LOOK_AT:
    VERB_PREP_ROLE[(_v, "at")] = "ARG1"
for _v in SEEK:
    VERB_PREP_ROLE[(_v, "for")] = "ARG1"
for _v in CHANGE:
    VERB_PREP_ROLE[(_v, "into")] = "ARG2"
for _v in TAKE:
    VERB_PREP_ROLE[(_v, "from")] = "ARG2"
for _v in FILL:
    VERB_PREP_ROLE[(_v, "with")] = "ARG2"
for _v in WORK_ON:
    VERB_PREP_ROLE[(_v, "on")] = "ARG1"
VERB_PREP_ROLE.update({
    ("listen", "to"): "ARG1", ("react", "to"): "ARG1", ("belong", "to"): "ARG1",
    ("dance", "to"): "ARGM-MNR", ("play", "with"): "ARG1", ("dress", "in"): "ARG2",
    ("dress", "as"): "ARGM-PRD", ("talk", "with"): "ARG2", ("speak", "with"): "ARG2",
    ("chat", "with"): "ARG2",
})

TIME_NOUNS = frozenset("""morning afternoon evening night nighttime daytime day today tonight
    minute second hour moment time week year month season winter summer autumn while
    beginning end weekend sunset sunrise dawn dusk noon midnight childhood""".split())

ANIMATE = frozenset("""man woman boy girl person people guy lady kid child baby toddler friend
    family player team teammate crowd audience group dog cat puppy kitten horse animal bird
    partner mother father mom dad parent son daughter brother sister husband wife girlfriend
    boyfriend student teacher coach host reporter anchor fan someone somebody everyone other
    opponent band singer actor actress character chef customer doctor patient officer police
    soldier judge contestant guest interviewer celebrity monkey elephant lion bear cow pig
    sheep goat fish""".split())

# Tags of the word after a headline's verb ("talks to camera", "interviews soldiers", "walks away").
AFTER_VERB = frozenset({"IN", "TO", "DT", "PRP", "PRP$", "RP", "RB", "RBR", "NN", "NNS", "NNP", "NNPS", "JJ", "CD",
                         "WDT", "WRB"})

# Intransitive subjects of these verbs undergo the event (PropBank ARG1): "the water boils".
UNACCUSATIVE = frozenset("""fall boil melt explode collapse happen occur appear disappear die
    rise sink float drip flow spill burst fade freeze bloom erupt shatter crumble sizzle bubble
    hang shine glow grow emerge vanish crack topple burn spin roll bounce change open close
    drop""".split())

ADV_ROLE = {
    **dict.fromkeys("""then now again still already soon later first finally afterwards
        afterward today tonight yesterday tomorrow once always often sometimes usually
        currently recently meanwhile eventually ever before after constantly continuously
        repeatedly immediately forever occasionally frequently lastly initially when whenever
        early late nowadays anymore yet momentarily""".split(), "ARGM-TMP"),
    **dict.fromkeys("""here there outside inside outdoors indoors everywhere somewhere anywhere
        nearby where underwater upstairs downstairs abroad onstage offstage overhead next close
        behind ahead beside underneath below above beneath elsewhere""".split(), "ARGM-LOC"),
    **dict.fromkeys("""away back up down around out off along forward forwards backward
        backwards over across through aside apart upward upwards downward downwards in home
        inward outward sideways past round""".split(), "ARGM-DIR"),
    **dict.fromkeys(["not", "n't", "never", "no"], "ARGM-NEG"),
    **dict.fromkeys("""also just even only too really actually probably maybe perhaps however
        so instead almost nearly else either especially mostly mainly basically apparently
        seemingly certainly definitely obviously""".split(), "ARGM-ADV"),
}

MARKER_ROLE = {
    **dict.fromkeys("while when as whenever after before until till since once".split(),
                    "ARGM-TMP"),
    **dict.fromkeys(["because"], "ARGM-CAU"),
    **dict.fromkeys(["if", "unless", "though", "although", "whereas", "whether"], "ARGM-ADV"),
    **dict.fromkeys(["like"], "ARGM-MNR"),
    **dict.fromkeys(["so", "that"], "ARGM-PRP"),
}

# Prepositions whose phrase, found at the end of a verb's object, describes the event (where,
# whither, when) rather than the object: "playing [a guitar] [on stage]". "with", "of", "for",
# "about" and "like" phrases usually do describe the noun ("a man with a beard") and stay.
VERB_SIDE_PREPS = frozenset("""in on at into onto to inside toward towards through across
    along near under underneath beneath behind beside during before after""".split())

SUBJ = ("nsubj", "csubj")
SUBJPASS = ("nsubjpass", "csubjpass")
# a noun's own modifiers: a word carrying one is read as a noun, and a verb misread as a noun
# carries its subject's words this way
NOMINAL_MODIFIERS = ("det", "amod", "compound", "nummod", "poss", "nmod", "quantmod")
# where the parser puts a verb it read as a plural noun, under the verb that follows it
MISREAD_AS_ARGUMENT = ("nsubj", "ccomp", "npadvmod", "dep")
# words of quantity that do take a plural after "a" ("a few birds"): no misread verb there
QUANTITY_WORDS = frozenset("""few many several dozen dozens hundred hundreds thousand thousands
    couple lot lots bunch pair handful number variety series set group crowd team""".split())
REL_PRON_TAGS = frozenset(["WDT", "WP", "WP$"])
