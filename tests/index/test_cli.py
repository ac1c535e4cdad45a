"""The index commands."""

from __future__ import annotations

import json
import subprocess
import sys


from hanet.cli import main as hanet_main

from .corpus import QUERY, RATE, arrays, frame_level, make_corpus, padded  # noqa: F401


def test_cli(tmp_path, run_dir, corpus, capsys):
    out = tmp_path / "idx"
    assert hanet_main(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(out),
                       "--videos", str(corpus.videos), "--quiet", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["added"] == len(corpus.names) and rep["thumbnails"] == 6
    assert hanet_main(["index", "info", str(out)]) == 0
    assert f"{len(corpus.names)} videos" in capsys.readouterr().out
    assert hanet_main(["search", str(out), QUERY, "-k", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["hits"]) == 4 and res["mode"] == "two-stage"
    assert hanet_main(["search", str(out), QUERY, "-k", "4", "--mode", "exhaustive"]) == 0
    table = capsys.readouterr().out
    assert res["hits"][0]["video_id"] in table and "concept_verb" in table
    assert hanet_main(["explain", str(out), QUERY, res["hits"][0]["video_id"]]) == 0
    assert "contribution" in capsys.readouterr().out
    # the moment of each hit, and with --phrases each verb phrase's
    assert hanet_main(["search", str(out), "A man w12 is riding w40 on a w7", "-k", "2", "--phrases"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "moment" in lines[1] and " s " in lines[2] and "\u2013" in lines[2]
    assert lines[3].split()[:2] == ["verb", "'riding'"] and lines[3].endswith(" s")
    assert hanet_main(["explain", str(out), "A man w12 is riding w40 on a w7", res["hits"][0]["video_id"]]) == 0
    exp = capsys.readouterr().out
    assert "moment: " in exp and "'riding'  at " in exp
    assert hanet_main(["index", "delete", str(out), res["hits"][0]["video_id"]]) == 0
    capsys.readouterr()
    # bad input: clear one-line errors, exit status 2
    for argv, msg in ((["search", str(out), "zebra"], "vocabulary"), (["search", str(out), ""], "empty query"),
                      (["search", str(out), "--video", "clip00"], "no captions are indexed"),
                      (["explain", str(out), QUERY, "nope"], "no video 'nope'"),
                      (["search", str(tmp_path / "none"), "w1"], "no such index"),
                      (["index", "add", str(out), "--features", str(tmp_path / "x.h5")], "not found")):
        assert hanet_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)


def test_parsing_the_commands_imports_no_heavy_module():
    code = ("import sys; from hanet.cli import build_parser\n"
            "for c in ('index', 'search', 'explain', 'serve'): build_parser(c)\n"
            "heavy = [m for m in ('torch', 'faiss', 'fastapi', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
