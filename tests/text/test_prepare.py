from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from .reader_emulation import consume
from .textdata import CAPTIONS, write_dataset

from hanet.errors import DataError
from hanet.text.cache import ParseCache
from hanet.text.normalize import normalize_caption, split_words
from hanet.text.prepare import OUTPUT_FILES, PrepareConfig, prepare_dataset
from hanet.text.rolegraph import validate_graph


def load(out: Path, name: str) -> Any:
    return json.loads((out / name).read_text("utf-8"))


def test_writes_every_file_in_the_released_format(prepared: tuple[Path, Any]) -> None:
    out, report = prepared
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    word2int = load(out, "word2int.json")
    int2word = np.load(out / "int2word.npy")
    assert int2word.dtype.kind == "U"
    assert list(int2word[:3]) == ["<bos>", "<eos>", "<unk>"]
    assert all(word2int[w] == i for i, w in enumerate(int2word))
    # the other entries are tokens of captions as given, read as their canonical word
    aliases = {t: i for t, i in word2int.items() if t not in set(int2word.tolist())}
    assert aliases == {"A": word2int["a"], "guitar.": word2int["guitar"], "man\u2019s": word2int["man's"]}
    assert "guitar" in word2int and "horse" not in word2int  # training captions only
    assert report.vocab_size == len(int2word)


def test_captions_keep_their_given_form_and_every_caption_has_a_graph(prepared: tuple[Path, Any]) -> None:
    out, _ = prepared
    captions = load(out, "ref_captions.json")
    assert captions == CAPTIONS  # keys as given: the files mix with anyone's ref_captions.json
    graphs = load(out, "sent2rolegraph.augment.json")
    assert set(graphs) == {c for caps in captions.values() for c in caps}
    for caption, graph in graphs.items():
        assert validate_graph(graph, split_words(caption)) == [], caption
        consume(graph)
    assert graphs[""] == [{"ROOT": {"role": "ROOT", "spans": [], "words": []}}, []]
    # parsed as "a man plays the guitar", indexed by the tokens as given
    nodes = graphs["A man plays the guitar."][0]
    assert nodes["ROOT"]["words"] == ["A", "man", "plays", "the", "guitar."]
    assert {n["role"]: n["words"] for k, n in nodes.items() if k != "ROOT"} == {
        "V": ["plays"], "ARG0": ["A", "man"], "ARG1": ["the", "guitar."]}


def test_concept_files(prepared: tuple[Path, Any]) -> None:
    out, report = prepared
    verbs, nouns = load(out, "verb_concepts.json"), load(out, "noun_concepts.json")
    assert verbs["concepts"]["play"]["count"] == 3  # playing, plays, playing (training videos)
    assert verbs["concepts"]["cook"]["count"] == 3
    assert "ride" not in verbs["concepts"]  # only in a test video
    assert nouns["concepts"]["guitar"]["count"] == 3
    assert report.num_verb_concepts == verbs["size"] == len(verbs["concepts"])
    verb_gt, verb_all = load(out, "verb_gt.json"), load(out, "verb_gt_all.json")
    noun_gt = load(out, "noun_gt.json")
    assert set(verb_gt) == set(CAPTIONS) == set(verb_all) == set(noun_gt)
    for name, caps in CAPTIONS.items():
        assert len(verb_gt[name]) == len(caps)
    play, guitar = verbs["concepts"]["play"]["id"], nouns["concepts"]["guitar"]["id"]
    assert verb_gt["video0"] == [[play], [play], [verbs["concepts"]["sing"]["id"], play]]
    assert guitar in noun_gt["video0"][0]
    assert verb_gt["video2"] == [[], [], []] and verb_all["video2"] == {}
    assert verb_all["video0"][str(play)] == 1.0
    assert verb_all["video0"][str(verbs["concepts"]["sing"]["id"])] == 0.33
    for weights in verb_all.values():
        assert all(0 < w <= 1 for w in weights.values())
        assert not weights or max(weights.values()) == 1.0


def test_report_lists_odd_captions(prepared: tuple[Path, Any]) -> None:
    out, report = prepared
    assert [e[:2] for e in report.empty_captions] == [["video2", 0], ["video2", 1], ["video2", 2]]
    assert report.num_empty_captions == 3
    assert "1 2 3" in report.no_node_captions
    assert report.long_captions == 1
    assert report.non_ascii_captions == 1
    assert report.graph_problems == []
    given = {c for caps in CAPTIONS.values() for c in caps}
    assert report.num_unique_captions == len(given) == 20
    assert report.num_parsed == len({normalize_caption(c) for c in given}) == 18  # each canonical form once
    on_disk = load(out, "prepare_report.json")
    assert on_disk["num_empty_captions"] == 3 and on_disk["config"]["num_verb_concepts"] == 512


def test_the_data_reader_encodes_every_prepared_caption(prepared: tuple[Path, Any]) -> None:
    from hanet.data.dataset import CaptionEncoder

    out, _ = prepared
    encoder = CaptionEncoder(load(out, "word2int.json"), 30, 4, 6)
    graphs = load(out, "sent2rolegraph.augment.json")
    for caption, graph in graphs.items():
        encoded = encoder.encode(caption, graph)
        assert encoded.length == min(30, len(split_words(caption)))
    enc = encoder.encode("a man is playing a guitar on stage",
                         graphs["a man is playing a guitar on stage"])
    assert enc.verb_mask[0, 3] and enc.noun_mask.sum() == 6  # a man / a guitar / on stage


def test_rerun_on_a_grown_file_parses_only_new_captions(tmp_path: Path, nlp: Any) -> None:
    small = {k: CAPTIONS[k] for k in ("video0", "video1")}
    cap_file, names = write_dataset(tmp_path / "in", small, ["video0"])
    cfg = PrepareConfig(progress=False)
    first = prepare_dataset(cap_file, names, tmp_path / "out", cfg, nlp=nlp)
    assert first.num_parsed == 6 and first.num_from_cache == 0
    graphs_before = load(tmp_path / "out", "sent2rolegraph.augment.json")

    grown = dict(small, video7=["a boy is kicking a ball", "a man plays the guitar"])
    cap_file, names = write_dataset(tmp_path / "in", grown, ["video0", "video7"])
    second = prepare_dataset(cap_file, names, tmp_path / "out", cfg, nlp=nlp)
    assert second.num_from_cache == 6 and second.num_parsed == 1  # one caption is not new
    graphs_after = load(tmp_path / "out", "sent2rolegraph.augment.json")
    assert all(graphs_after[c] == g for c, g in graphs_before.items())

    # a run killed mid-write leaves a torn line: it is dropped, the rest is reused
    cache_file = tmp_path / "out" / "prepare_cache.jsonl"
    with open(cache_file, "a", encoding="utf-8") as fh:
        fh.write('{"c": "a torn li')
    third = prepare_dataset(cap_file, names, tmp_path / "out", cfg, nlp=nlp)
    assert third.num_parsed == 0 and third.num_from_cache == 7
    assert cache_file.read_text("utf-8").endswith("\n")

    # a cache made by another parser version is discarded, not mixed in
    other = ParseCache(cache_file, "another parser")
    assert other.load() == {} and other.discarded


def test_no_normalize_keeps_captions_verbatim(tmp_path: Path, nlp: Any) -> None:
    caps = {"v0": ["A man plays the guitar.", "a  woman   sings"]}
    cap_file, names = write_dataset(tmp_path / "in", caps, ["v0"])
    prepare_dataset(cap_file, names, tmp_path / "out",
                    PrepareConfig(normalize=False, use_cache=False, progress=False), nlp=nlp)
    graphs = load(tmp_path / "out", "sent2rolegraph.augment.json")
    assert set(graphs) == set(caps["v0"])
    for caption, graph in graphs.items():
        assert validate_graph(graph, caption.split()) == []
    assert "guitar." in load(tmp_path / "out", "word2int.json")
    assert not (tmp_path / "out" / "prepare_cache.jsonl").exists()


def test_srl_file_provides_graphs(tmp_path: Path, nlp: Any) -> None:
    caps = {"v0": ["a man sings a song", "a woman dances"]}
    srl = {"a man sings a song": {"words": "a man sings a song".split(), "verbs": [
        {"tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1"]}]},
        "something else": {"words": ["something", "else"], "verbs": []}}
    cap_file, names = write_dataset(tmp_path / "in", caps, ["v0"])
    srl_file = tmp_path / "in" / "sent2srl.json"
    srl_file.write_text(json.dumps(srl))
    report = prepare_dataset(cap_file, names, tmp_path / "out", PrepareConfig(progress=False),
                             srl_file=srl_file, nlp=nlp)
    assert (report.srl_graphs, report.srl_missing) == (1, 1)
    nodes, edges = load(tmp_path / "out", "sent2rolegraph.augment.json")["a man sings a song"]
    assert edges == [["1", "2", "ARG0"], ["1", "3", "ARG1"]]


def test_srl_graph_without_predicate_over_a_cache_made_without_srl(tmp_path: Path,
                                                                   nlp: Any) -> None:
    caps = {"v0": ["a woman is dancing on a stage"]}
    cap_file, names = write_dataset(tmp_path / "in", caps, ["v0"])
    cfg = PrepareConfig(progress=False)
    prepare_dataset(cap_file, names, tmp_path / "out", cfg, nlp=nlp)  # caches, no fallback
    # a labeller that found no argument for "dances": the graph needs the fallback nodes
    srl = {caps["v0"][0]: {"words": caps["v0"][0].split(),
                           "verbs": [{"tags": ["O", "O", "O", "B-V", "O", "O", "O"]}]}}
    srl_file = tmp_path / "in" / "sent2srl.json"
    srl_file.write_text(json.dumps(srl))
    report = prepare_dataset(cap_file, names, tmp_path / "out", cfg, srl_file=srl_file, nlp=nlp)
    assert report.num_from_cache == 1 and report.srl_graphs == 1
    nodes, edges = load(tmp_path / "out", "sent2rolegraph.augment.json")[caps["v0"][0]]
    assert [(n["role"], n["words"]) for k, n in nodes.items() if k != "ROOT"] == [
        ("NOUN", ["a", "woman"]), ("NOUN", ["a", "stage"]), ("V", ["is"]), ("V", ["dancing"])]
    assert edges == []


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected {video_name: [caption, ...]}, got a JSON array"),
    ('{"v0": "a man sings"}', "video 'v0': expected a list of captions, got a JSON string"),
    ('{"v0": ["ok", null]}', "video 'v0', caption 1: expected a string, got a JSON null"),
    ('{"v0": ["ok", 3]}', "video 'v0', caption 1: expected a string, got a JSON number"),
    ("{}", "has no videos"),
    ('{"v0": ["a"]', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_malformed_caption_files(tmp_path: Path, content: Any, message: str) -> None:
    cap_file = tmp_path / "caps.json"
    if isinstance(content, bytes):
        cap_file.write_bytes(content)
    else:
        cap_file.write_text(content)
    np.save(tmp_path / "names.npy", np.array(["v0"]))
    with pytest.raises(DataError) as err:
        prepare_dataset(cap_file, tmp_path / "names.npy", tmp_path / "out")
    assert str(cap_file) in str(err.value) and message in str(err.value)


def test_bad_name_files(tmp_path: Path) -> None:
    cap_file, _ = write_dataset(tmp_path, {"v0": ["a man sings"]}, ["v0"])
    cases = {
        "missing.npy": ("not found", None),
        "ints.npy": ("1-D array of strings", np.arange(3)),
        "objects.npy": ("without unpickling", np.array(["v0", None], dtype=object)),
        "unknown.npy": ("have no captions", np.array(["v0", "v9"])),
    }
    for name, (message, array) in cases.items():
        if array is not None:
            np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(DataError) as err:
            prepare_dataset(cap_file, tmp_path / name, tmp_path / "out")
        assert name in str(err.value) and message in str(err.value), str(err.value)
    (tmp_path / "text.npy").write_text("v0\n")
    with pytest.raises(DataError, match="text.npy"):
        prepare_dataset(cap_file, tmp_path / "text.npy", tmp_path / "out")


def test_cli_runs_and_reports_bad_input_without_traceback(
        tmp_path: Path, nlp: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from hanet.cli import main

    cap_file, names = write_dataset(tmp_path / "in", {"v0": ["a man sings", "Dogs bark!"]},
                                    ["v0"])
    rc = main(["prepare", "--captions", str(cap_file), "--train-names", str(names),
               "--out", str(tmp_path / "out"), "--quiet", "--num-verb-concepts", "1"])
    assert rc == 0
    assert load(tmp_path / "out", "verb_concepts.json")["size"] == 1
    (tmp_path / "bad.json").write_text('{"v0": [1]}')
    rc = main(["prepare", "--captions", str(tmp_path / "bad.json"), "--train-names",
               str(names), "--out", str(tmp_path / "out2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json" in err and "Traceback" not in err


def test_prepared_files_mix_with_the_authors_reader(prepared: tuple[Path, Any]) -> None:
    """The authors' reader, given *their* caption file (the captions as written) beside our
    vocabulary and graphs, finds a graph for every caption and reads what our reader reads.
    Golden: ``scripts/record_authors_golden.py reader`` (their ``RoleGraphDataset``) on this
    prepare output."""
    from hanet.data.dataset import CaptionEncoder

    out, _ = prepared
    golden = np.load(Path(__file__).parent / "data" / "authors_reader.npz")
    graphs = load(out, "sent2rolegraph.augment.json")
    encoder = CaptionEncoder(load(out, "word2int.json"), 30, 4, 6)
    captions = golden["captions"].tolist()
    assert set(captions) == {c for caps in CAPTIONS.values() for c in caps}
    for i, caption in enumerate(captions):
        ours = encoder.encode(caption, graphs[caption])
        np.testing.assert_array_equal(ours.word_ids, golden[f"{i}/sent_ids"], err_msg=caption)
        assert ours.length == int(golden[f"{i}/sent_lens"]), caption
        np.testing.assert_array_equal(ours.verb_mask, golden[f"{i}/verb_masks"], err_msg=caption)
        np.testing.assert_array_equal(ours.noun_mask, golden[f"{i}/noun_masks"], err_msg=caption)
        np.testing.assert_array_equal(ours.roles, golden[f"{i}/node_roles"], err_msg=caption)
        np.testing.assert_allclose(ours.edges, golden[f"{i}/rel_edges"], rtol=0, atol=0, err_msg=caption)
    # "A man plays the guitar." reads as its canonical words
    i = captions.index("A man plays the guitar.")
    w2i = load(out, "word2int.json")
    assert golden[f"{i}/sent_ids"][:5].tolist() == [w2i[w] for w in "a man plays the guitar".split()]
