"""A battery of hostile inputs against hanet's doors: each case spoils one thing and runs one
command in this process; every outcome is classified.

Outcomes: ``refused`` (exit status 1 or 2, the message names the file or record, no traceback),
``reported`` (the command went on and named the bad item: a long job skipping it), ``answered``
(a server's status as expected), ``ignored`` (a file the index does not record is never read),
and the failures ``traceback``, ``hang`` (no answer within the
limit), ``silent`` (exit 0 without naming the problem) and ``unexpected``::

    .venv/bin/python scripts/hostile_battery.py [--out benchmarks/results/hostile_inputs.json]

Needs the test extras (the tests' small corpus and run helpers) and spaCy's model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hanet.cli import main  # noqa: E402
from hanet.parity import DEFAULT_REFERENCE  # noqa: E402
from tests.spoil import GRAPH_SPOILS, spoil_graph  # noqa: E402  (the tests' spoilers)

LIMIT_S = 120


class Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Hang()


def run(argv: list[str]) -> tuple[int | str, str]:
    """(exit status or 'traceback' / 'hang', stdout + stderr) of one command in this process."""
    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: int | str = main(argv)
            except SystemExit as e:
                code = int(e.code) if isinstance(e.code, int) else 2
    except Hang:
        code = "hang"
    except BaseException as exc:  # noqa: BLE001 - what the battery looks for
        import traceback

        code = "traceback"
        err.write(traceback.format_exc() + repr(exc))
    finally:
        signal.alarm(0)
    text = out.getvalue() + err.getvalue()
    if "Traceback (most recent call last)" in text and code != "hang":
        code = "traceback"
    return code, text


def judge(code: int | str, text: str, names: list[str], expect: str) -> str:
    """The outcome of a case (see the module docstring)."""
    if code in ("traceback", "hang"):
        return str(code)
    named = any(n in text for n in names)
    if code in (1, 2):
        return "refused" if named else "unexpected"
    if code == 0:
        if expect == "report" and named:
            return "reported"
        return "silent"
    return "unexpected"


# ---------------------------------------------------------------------- the things spoiled
def reference_copy(tmp: Path) -> Path:
    d = tmp / "ds"
    shutil.copytree(DEFAULT_REFERENCE / "data", d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def spoil_feature(path: Path, name: str, kind: str, tmp: Path) -> None:
    """Replace video ``name`` of an HDF5 feature file by a bad entry of this kind."""
    with h5py.File(path, "a") as f:
        good = f[name][...]
        dim = good.shape[1]
        del f[name]
        if kind == "group":
            f.create_group(name)
        elif kind == "strings":
            f.create_dataset(name, data=np.array([b"a", b"b"]))
        elif kind == "compound":
            f.create_dataset(name, data=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))
        elif kind == "complex":
            f.create_dataset(name, data=np.zeros((3, dim), np.complex64))
        elif kind == "1-D":
            f.create_dataset(name, data=np.zeros(dim, np.float32))
        elif kind == "3-D":
            f.create_dataset(name, data=np.zeros((2, 3, dim), np.float32))
        elif kind == "narrow":
            f.create_dataset(name, data=good[:, :7])
        elif kind == "no frames":
            f.create_dataset(name, shape=(0, dim), dtype=np.float32)
        elif kind == "declares 2M frames":
            f.create_dataset(name, shape=(2_000_000, dim), dtype=np.float32, chunks=(1, dim))
        elif kind == "NaN":
            f.create_dataset(name, data=np.full_like(good, np.nan))
        elif kind == "inf":
            f.create_dataset(name, data=np.where(np.arange(good.size).reshape(good.shape) == 3, np.inf, good))
        elif kind == "dangling link":
            f[name] = h5py.SoftLink("/nowhere")
        elif kind == "self link":
            f[name] = h5py.SoftLink("/" + name)
        elif kind == "external link":
            other = tmp / f"other-{name}.hdf5"
            with h5py.File(other, "w") as o:
                o.create_dataset("far", data=good)
            f[name] = h5py.ExternalLink(str(other), "/far")
        elif kind in ("NaN times", "2-D times", "string duration", "decreasing times"):
            f.create_dataset(name, data=good)
            n = len(good)
            if kind == "NaN times":
                f[name].attrs["timestamps"] = np.where(np.arange(n) == 1, np.nan, np.arange(n) / 5.0)
            elif kind == "2-D times":
                f[name].attrs["timestamps"] = np.zeros((2, n))
            elif kind == "decreasing times":
                f[name].attrs["timestamps"] = np.arange(n)[::-1] / 5.0
            else:
                f[name].attrs["duration"] = "long"
        else:
            raise ValueError(kind)


FEATURE_KINDS = ["group", "strings", "compound", "complex", "1-D", "3-D", "narrow", "no frames", "declares 2M frames",
                 "NaN", "inf", "dangling link", "self link", "external link", "NaN times", "2-D times",
                 "string duration", "decreasing times"]
#: problems with what a video says of itself (frame times, duration): indexed without them, and said
ATTRIBUTE_KINDS = {"NaN times", "2-D times", "string duration", "decreasing times"}


def spoil_annotation(ds: Path, kind: str) -> list[str]:
    """Spoil one annotation file of the reference dataset; returns what a message should name."""
    names = [str(n) for n in np.load(ds / "trn_names.npy")]
    if kind.startswith("graph:"):
        cap = spoil_graph(ds, kind[6:])
        return [cap[:40], "sent2rolegraph"]
    vocab_p = ds / "word2int.json"
    w = json.loads(vocab_p.read_text())
    if kind.startswith("vocab:"):
        how = kind[6:]
        spoilt = {"empty": {}, "negative id": {**w, "extra": -4}, "gap": {**w, "gap": len(set(w.values())) + 10},
                  "10^11 id": {**w, "far": 10 ** 11}, "string id": {**w, "odd": "7"}, "a list": list(w)}[how]
        vocab_p.write_text(json.dumps(spoilt))
        return ["word2int.json"]
    if kind.startswith("concepts:"):
        p = ds / "verb_gt_all.json"
        d = json.loads(p.read_text())
        how = kind[9:]
        if how == "NaN weight":
            d[names[1]] = {"0": float("nan")}
        elif how == "negative weight":
            d[names[1]] = {"3": -0.5}
        elif how == "string weight":
            d[names[1]] = {"3": "heavy"}
        elif how == "concept id past the classes":
            d[names[1]] = {"100000": 1.0}
        p.write_text(json.dumps(d))
        return [names[1], "verb_gt"]
    if kind == "names: a video in two splits":
        tst = [str(n) for n in np.load(ds / "tst_names.npy")]
        np.save(ds / "tst_names.npy", np.array(tst + [names[0]]))
        with h5py.File(ds / "trn_ft.hdf5", "r") as a, h5py.File(ds / "tst_ft.hdf5", "a") as b:
            b[names[0]] = a[names[0]][...]
        return [names[0]]
    if kind == "names: pickled objects":
        np.save(ds / "trn_names.npy", np.array(names, dtype=object), allow_pickle=True)
        return ["trn_names.npy"]
    if kind == "names: not a name file":
        (ds / "trn_names.npy").write_bytes(b"not numpy at all")
        return ["trn_names.npy"]
    if kind.startswith("deep JSON: "):
        p = ds / kind[len("deep JSON: "):]
        p.write_text("[" * 100_000 + "]" * 100_000)
        return [p.name]
    if kind == "captions: a caption that is a number":
        caps = json.loads((ds / "ref_captions.json").read_text())
        caps[names[2]] = [5]
        (ds / "ref_captions.json").write_text(json.dumps(caps))
        return [names[2], "ref_captions"]
    if kind == "captions: no captions for a video":
        caps = json.loads((ds / "ref_captions.json").read_text())
        del caps[names[2]]
        (ds / "ref_captions.json").write_text(json.dumps(caps))
        return [names[2]]
    raise ValueError(kind)


ANNOTATION_KINDS = (["graph:" + k for k in GRAPH_SPOILS]
                    + ["vocab:" + k for k in ("empty", "negative id", "gap", "10^11 id", "string id", "a list")]
                    + ["concepts:" + k for k in ("NaN weight", "negative weight", "string weight",
                                                 "concept id past the classes")]
                    + ["names: a video in two splits", "names: pickled objects", "names: not a name file",
                       "deep JSON: ref_captions.json", "deep JSON: sent2rolegraph.augment.json",
                       "deep JSON: word2int.json", "deep JSON: verb_gt_all.json",
                       "captions: a caption that is a number", "captions: no captions for a video"])


def spoil_index(idx: Path, other: Path, kind: str) -> list[str]:
    """Spoil one file of an index (``other``: an index of the same model); returns what to name."""
    seg = next((idx / "segments").glob("v-*"))
    oseg = next((other / "segments").glob("v-*"))
    if kind == "records.npy of another index":
        shutil.copy(oseg / "records.npy", seg / "records.npy")
        return ["records.npy"]
    if kind == "ids.json of another index":
        shutil.copy(oseg / "ids.json", seg / "ids.json")
        return ["ids.json"]
    if kind == "faiss/ of another index":
        for f in (idx / "faiss").iterdir():
            src = next((other / "faiss").glob("*" + f.name.split("-", 2)[-1]), None)
            if src is not None:
                shutil.copy(src, f)
        return ["faiss"]
    if kind == "truncated records.npy":
        p = seg / "records.npy"
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size - 1000)
        return ["records.npy"]
    if kind == "garbled records.npy (same size)":
        p = seg / "records.npy"
        data = bytearray(p.read_bytes())
        data[-5000:-4000] = os.urandom(1000)
        p.write_bytes(bytes(data))
        return ["records.npy"]
    if kind in ("truncated meta.jsonl", "garbled vocab.json", "garbled concepts.json", "shuffled vocab.json",
                "missing model.pt", "truncated manifest.json"):
        target = {"truncated meta.jsonl": seg / "meta.jsonl", "garbled vocab.json": idx / "vocab.json",
                  "garbled concepts.json": idx / "concepts.json", "shuffled vocab.json": idx / "vocab.json",
                  "missing model.pt": idx / "model.pt", "truncated manifest.json": idx / "manifest.json"}[kind]
        if kind == "shuffled vocab.json":
            w = json.loads(target.read_text())
            target.write_text(json.dumps(dict(zip(list(w), np.roll(np.array(list(w.values())), 1).tolist()))))
        elif kind == "missing model.pt":
            target.unlink()
        elif kind.startswith("truncated"):
            target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        else:
            target.write_bytes(b"\x00garbled\xff" * 20)
        return [target.name]
    raise ValueError(kind)


INDEX_KINDS = ["records.npy of another index", "ids.json of another index", "faiss/ of another index",
               "truncated records.npy", "garbled records.npy (same size)", "truncated meta.jsonl",
               "garbled vocab.json", "garbled concepts.json", "shuffled vocab.json", "missing model.pt",
               "truncated manifest.json"]


def option_cases(tmp: Path, ds: Path) -> list[tuple[str, list[str], list[str]]]:
    """(name, argv, words one of which the message must hold)."""
    fifo = tmp / "names.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    t = ["train", "--data", str(ds), "--out", str(tmp / "opt-run"), "--no-progress", "--num-workers", "0",
         "--preset", "msrvtt"]
    return [
        ("train --log-every 0", t + ["--log-every", "0"], ["--log-every"]),
        ("train --seed 2**70", t + ["--seed", str(2 ** 70)], ["--seed"]),
        ("train --precision fp16 on a CPU", t + ["--precision", "fp16", "--device", "cpu"], ["fp16"]),
        ("train --set model.video.dropout=2", t + ["--set", "model.video.dropout=2"], ["dropout"]),
        ("train --set model=5", t + ["--set", "model=5"], ["model"]),
        ("train --set nosuch.key=1", t + ["--set", "nosuch.key=1"], ["nosuch"]),
        ("train --dim-word 0", t + ["--dim-word", "0"], ["--dim-word"]),
        ("train --max-steps 0", t + ["--max-steps", "0"], ["--max-steps"]),
        ("train --lr nan", t + ["--lr", "nan"], ["--lr"]),
        ("train --batch-size -3", t + ["--batch-size", "-3"], ["--batch-size"]),
        ("train --epochs 1e9", t + ["--epochs", "1e9"], ["--epochs"]),
        ("train --data a file", ["train", "--data", str(ds / "word2int.json"), "--out", str(tmp / "r2")], ["word2int"]),
        ("evaluate --batch-size 0", ["evaluate", "--run", str(tmp), "--batch-size", "0"], ["--batch-size"]),
        ("evaluate --pair-budget -5", ["evaluate", "--run", str(tmp), "--pair-budget", "-5"], ["--pair-budget"]),
        ("evaluate a folder that is no run", ["evaluate", "--run", str(tmp)], [str(tmp)]),
        ("prepare --num-noun-concepts 1e9", ["prepare", "--captions", "x", "--train-names", "y", "--out", "z",
                                             "--num-noun-concepts", "1000000000"], ["--num-noun-concepts"]),
        ("prepare a FIFO as --train-names", ["prepare", "--captions", str(ds / "ref_captions.json"), "--train-names",
                                             str(fifo), "--out", str(tmp / "ann")], ["not a regular file"]),
        ("extract --threads 0", ["extract", "x", "--out", "y", "--threads", "0"], ["--threads"]),
        ("extract a missing video", ["extract", str(tmp / "none.mp4"), "--out", str(tmp / "f.h5"), "--no-progress"],
         ["none.mp4"]),
        ("synth --preset nope", ["synth", "--out", str(tmp / "w"), "--preset", "nope"], ["--preset"]),
        ("synth --size 100000", ["synth", "--out", str(tmp / "w"), "--size", "100000"], ["--size"]),
        ("serve --port 70000", ["serve", "x", "--port", "70000"], ["--port"]),
        ("search -k 0", ["search", "x", "q", "-k", "0"], ["-k"]),
        ("search --candidates -1", ["search", "x", "q", "--candidates", "-1"], ["--candidates"]),
        ("index build --segment-size 0", ["index", "build", "--run", "x", "--features", "y", "--out", "z",
                                          "--segment-size", "0"], ["--segment-size"]),
        ("index build --url edge:", ["index", "build", "--run", "x", "--features", "y", "--out", str(tmp / "e"),
                                     "--backend", "qdrant", "--url", "edge:"], ["edge:", "x"]),
        ("check-data a file", ["check-data", str(ds / "word2int.json")], ["word2int"]),
    ]


# ---------------------------------------------------------------------- the battery
def battery(tmp: Path) -> list[dict]:
    from tests.index.corpus import make_corpus, make_run  # the tests' small run and corpus

    results: list[dict] = []

    def record(kind: str, case: str, command: str, outcome: str, text: str) -> None:
        results.append({"kind": kind, "case": case, "command": command, "outcome": outcome,
                        "message": text.strip().splitlines()[-1][:300] if text.strip() else ""})
        print(f"{outcome:10s} {kind:12s} {case} [{command}]", file=sys.stderr, flush=True)

    run_dir = make_run(tmp / "run")
    corpus = make_corpus(tmp / "corpus")
    # feature files: check-data on the reference dataset, index build on the corpus
    for kind in FEATURE_KINDS:
        ds = reference_copy(tmp / f"f-{len(results)}")
        name = str(np.load(ds / "trn_names.npy")[0])
        spoil_feature(ds / "trn_ft.hdf5", name, kind, tmp)
        code, text = run(["check-data", str(ds)])
        record("features", kind, "check-data", judge(code, text, [name], "refuse"), text)
        feats = tmp / f"feats-{len(results)}.hdf5"
        shutil.copy(corpus.features, feats)
        spoil_feature(feats, corpus.names[1], kind, tmp)
        out = tmp / f"idx-{len(results)}"
        code, text = run(["index", "build", "--run", str(run_dir), "--features", str(feats), "--out", str(out),
                          "--no-thumbnails", "--quiet"])
        outcome = judge(code, text, [corpus.names[1]], "report")
        if outcome == "reported" and kind in ATTRIBUTE_KINDS:  # then searching it must answer, with no NaN
            code2, text2 = run(["search", str(out), "w3 w17 w42", "-k", "16", "--json"])
            if code2 != 0 or "NaN" in text2:
                outcome = "traceback" if code2 == "traceback" else "unexpected"
                text = text2
        record("features", kind, "index build (+ search)", outcome, text)
    # annotations: check-data and train on the reference dataset
    for kind in ANNOTATION_KINDS:
        ds = reference_copy(tmp / f"a-{len(results)}")
        names = spoil_annotation(ds, kind)
        code, text = run(["check-data", str(ds), "--quick"])
        record("annotations", kind, "check-data", judge(code, text, names, "refuse"), text)
        ds2 = reference_copy(tmp / f"a2-{len(results)}")
        spoil_annotation(ds2, kind)
        code, text = run(["train", "--data", str(ds2), "--out", str(tmp / f"run-{len(results)}"), "--no-progress",
                          "--num-workers", "0", "--preset", "msrvtt", "--epochs", "1"])
        record("annotations", kind, "train", judge(code, text, names, "refuse"), text)
    # index files: search and verify
    base, other = tmp / "base-idx", tmp / "other-idx"
    run(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(base),
         "--captions", str(corpus.captions), "--no-thumbnails", "--quiet"])
    names_file = tmp / "half.txt"
    names_file.write_text("\n".join(corpus.names[::2]))
    run(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(other),
         "--names", str(names_file), "--no-thumbnails", "--quiet"])
    has_concepts = bool(json.loads((base / "manifest.json").read_text()).get("concepts"))
    for kind in INDEX_KINDS:
        idx = tmp / f"i-{len(results)}"
        shutil.copytree(base, idx)
        names = spoil_index(idx, other, kind)
        # a file the index does not record (no concept names here) is not its own: never read
        stray = kind == "garbled concepts.json" and not has_concepts
        case = "a stray, garbled concepts.json (the index records none)" if stray else kind
        code, text = run(["search", str(idx), "w3 w17 w42", "-k", "5"])
        outcome = ("ignored" if code == 0 else judge(code, text, names, "refuse")) if stray else judge(code, text, names, "refuse")
        record("index files", case, "search", outcome, text)
        code, text = run(["index", "verify", str(idx)])
        outcome = ("ignored" if code == 0 else judge(code, text, names, "refuse")) if stray else judge(code, text, names, "refuse")
        record("index files", case, "index verify", outcome, text)
    # options
    ds = reference_copy(tmp / "opts")
    for case, argv, words in option_cases(tmp, ds):
        code, text = run(argv)
        record("options", case, argv[0], judge(code, text, words, "refuse"), text)
    results += server_cases(tmp, base, corpus)
    for r in results[-len(SERVER_CASES):]:
        print(f"{r['outcome']:10s} {r['kind']:12s} {r['case']}", file=sys.stderr)
    return results


SERVER_CASES = ["thumbnail strip replaced by a symlink to /etc/passwd", "a Host header of another name",
                "a path that climbs out of the static folder", "a video id that is a path",
                "an index built from features with a string duration: /search",
                "a record file truncated under the running server: /search", "serving writes nothing"]


def server_cases(tmp: Path, base: Path, corpus) -> list[dict]:
    """The server's doors, through its app in this process."""
    from fastapi.testclient import TestClient

    from hanet.index import SearchIndex, build_index
    from hanet.serve.app import create_app

    out = []

    def add(case: str, ok: bool, detail: str) -> None:
        out.append({"kind": "server", "case": case, "command": "serve", "outcome": "answered" if ok else "unexpected",
                    "message": detail[:300]})

    idx = tmp / "srv"
    shutil.copytree(base, idx)
    # a strip for row 0 replaced by a symlink out of the index
    seg = next((idx / "segments").glob("v-*"))
    (seg / "thumbs").mkdir(exist_ok=True)
    thumb = seg / "thumbs" / "0.jpg"
    thumb.unlink(missing_ok=True)
    thumb.symlink_to("/etc/passwd")
    before = {str(p): p.stat().st_mtime_ns for p in idx.rglob("*") if p.is_file() and not p.is_symlink()}
    with SearchIndex.open(idx) as index:
        client = TestClient(create_app(index, preload_parser=False), base_url="http://127.0.0.1")
        vid = index.videos.ids[0]
        r = client.get(f"/videos/{vid}/thumbnail.jpg")
        add(SERVER_CASES[0], r.status_code == 404 and "root:" not in r.text, f"{r.status_code}")
        r = client.get("/health", headers={"Host": "evil.example"})
        add(SERVER_CASES[1], r.status_code == 421, f"{r.status_code}")
        r = client.get("/static/../../../etc/passwd")
        add(SERVER_CASES[2], r.status_code == 404 and "root:" not in r.text, f"{r.status_code}")
        r = client.get("/videos/..%2F..%2Fetc%2Fpasswd")
        add(SERVER_CASES[3], r.status_code in (400, 404) and "root:" not in r.text, f"{r.status_code}")
    feats = tmp / "strdur.hdf5"
    shutil.copy(corpus.features, feats)
    spoil_feature(feats, corpus.names[1], "string duration", tmp)
    sidx = tmp / "srv-dur"
    build_index(tmp / "run", feats, sidx, thumbnails=False)
    with SearchIndex.open(sidx) as index:
        client = TestClient(create_app(index, preload_parser=False), base_url="http://127.0.0.1")
        r = client.get("/search", params={"q": "w3 w17 w42", "k": 16})
        add(SERVER_CASES[4], r.status_code == 200 and "NaN" not in r.text, f"{r.status_code}")
    with SearchIndex.open(idx) as index:
        client = TestClient(create_app(index, preload_parser=False), base_url="http://127.0.0.1", raise_server_exceptions=False)
        rec = next((idx / "segments").glob("v-*")) / "records.npy"
        keep = rec.read_bytes()
        with open(rec, "r+b") as f:
            f.truncate(len(keep) // 2)
        r = client.get("/search", params={"q": "w3 w17 w42", "k": 5, "mode": "exhaustive"})
        body = r.text
        add(SERVER_CASES[5], r.status_code >= 500 and str(idx) not in body and "incident" in body.lower(),
            f"{r.status_code} {body[:200]}")
        rec.write_bytes(keep)
    after = {str(p): p.stat().st_mtime_ns for p in idx.rglob("*") if p.is_file() and not p.is_symlink()}
    changed = [p for p in before if after.get(p) != before[p] and not p.endswith("records.npy")]
    add(SERVER_CASES[6], not changed, f"changed: {changed[:3]}")
    return out


def main_battery(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hostile_inputs.json"))
    args = ap.parse_args(argv)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="hanet-hostile-") as tmp:
        results = battery(Path(tmp))
    summary: dict[str, dict[str, int]] = {}
    for r in results:
        summary.setdefault(r["kind"], {}).setdefault(r["outcome"], 0)
        summary[r["kind"]][r["outcome"]] += 1
    bad = [r for r in results if r["outcome"] not in ("refused", "reported", "answered", "ignored")]
    data = {"date": time.strftime("%Y-%m-%d"), "command": "python scripts/hostile_battery.py",
            "seconds": round(time.time() - t0), "cases": len(results), "by_kind": summary, "failures": bad,
            "results": results}
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({"cases": len(results), "by_kind": summary, "failures": len(bad)}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main_battery())
