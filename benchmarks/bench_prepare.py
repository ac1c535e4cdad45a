"""Speed of ``hanet prepare`` on generated MSR-VTT-like captions.

MSR-VTT has about 200k captions (10k videos x 20), 9-10 words on average. This script writes a
caption file of that shape (``--videos`` x 20 captions, from templates with a large vocabulary so
nearly every caption is distinct), then measures:

1. the full command, cold (nothing cached): captions/s and the projected time for 200k;
2. the same command again (every caption cached) and after adding 5% new videos;
3. single-query parse latency (what ``hanet search`` pays per query).

Run (the issue's budget: 200k captions in <= 5 minutes on the 2-core CPU)::

    .venv/bin/python benchmarks/bench_prepare.py                 # 1000 videos = 20k captions
    .venv/bin/python benchmarks/bench_prepare.py --videos 10000  # the full 200k
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SUBJECTS = """a man|a woman|a girl|a boy|two men|a group of people|a chef|a cat|a dog|a person
|someone|a young woman|an old man|a little girl|the players|a cartoon character|a news reporter
|a man in a black shirt|a woman with long hair|kids|a baby|a band|a crowd|a teenager|a couple
|a soccer player|a singer|a student|a teacher|a monkey|a horse|a car|a bird""".split("|")
VERBS = """is playing|plays|is cooking|cooks|is talking about|talks to|is walking down
|walks into|is driving|drives|is showing|shows|is dancing with|is singing|sings|is riding|rides
|is eating|eats|is holding|holds|is cutting|cuts|is explaining|explains|is throwing|throws
|is running across|runs through|is putting|puts|is watching|watches|is fixing|fixes|is cleaning
|cleans|is drawing|draws|is reading|reads|is pouring|pours|is climbing|climbs|is swimming in
|is fighting|fights|is building|builds|is opening|opens|is kicking|kicks|is wearing|wears
|is demonstrating|demonstrates|is chasing|chases|is mixing|mixes|is washing|washes|is painting
|paints|is carrying|carries|is pushing|pushes|is lifting|lifts|is folding|folds""".split("|")
OBJECTS = """a guitar|some food|the car|a video game|a dog|the ball|soccer|a song|the piano
|a cake|a pizza|the street|a horse|a bike|a knife|the door|a phone|a book|a picture|the kitchen
|the water|a box|a tree|a hat|a red dress|a paper airplane|the floor|the window|a toy truck
|some vegetables|a bowl of soup|the camera|the audience|a basketball|a pool|the table|a wall
|a computer|a new phone|a microphone|the field|a sandwich|a cup of coffee|the rules of a game
|a yoga pose|a rock wall|a flat tire|a white shirt|the dishes|a small boat""".split("|")
PLACES = """on stage|in the kitchen|on the street|in a room|at the park|on a beach|in a field
|in front of a mirror|at the gym|in the rain|on a table|in a classroom|outside|on a couch
|in a pan|into a bowl|across the road|down the hill|around the track|in the morning|at night
|with a knife|with a spoon|to the camera|for the audience|quickly|slowly|together|again
|while a woman watches|and laughs|and talks|while music plays|on a talent show""".split("|")


def make_caption(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS).strip(), rng.choice(VERBS).strip(),
             rng.choice(OBJECTS).strip()]
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        words.append(rng.choice(PLACES).strip())
    return " ".join(words)


def write_captions(videos: int, start: int = 0, seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed + start)
    return {f"video{i}": [make_caption(rng) for _ in range(20)]
            for i in range(start, start + videos)}


def save(root: Path, captions: dict[str, list[str]],
         train_fraction: float = 0.65) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    cap_file, names_file = root / "ref_captions.json", root / "trn_names.npy"
    cap_file.write_text(json.dumps(captions))
    names = list(captions)[: max(1, int(len(captions) * train_fraction))]
    np.save(names_file, np.array(names, dtype=str))
    return cap_file, names_file


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished worker processes
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=1000, help="videos of 20 captions each")
    ap.add_argument("--workers", type=int, default=0,
                    help="parsing processes (0: prepare's default, one per core up to 4)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200, help="single-query parses to time")
    args = ap.parse_args()

    from hanet.text.nlp import load_nlp
    from hanet.text.prepare import PrepareConfig, prepare_dataset
    from hanet.text.rolegraph import RoleGraphParser

    t0 = time.perf_counter()
    nlp = load_nlp()
    load_s = time.perf_counter() - t0
    cfg = PrepareConfig(progress=False, n_process=args.workers, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        captions = write_captions(args.videos)
        n_caps = sum(len(c) for c in captions.values())
        cap_file, names = save(root / "in", captions)
        mean_words = statistics.mean(len(c.split()) for cs in captions.values() for c in cs)

        load_before = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        cold = prepare_dataset(cap_file, names, root / "out", cfg, nlp=nlp)
        cold_s = time.perf_counter() - t0
        cold_cpu = _cpu_seconds() - cpu0
        load_after = os.getloadavg()[0]
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        t0 = time.perf_counter()
        warm = prepare_dataset(cap_file, names, root / "out", cfg, nlp=nlp)
        warm_s = time.perf_counter() - t0

        grown = dict(captions, **write_captions(max(1, args.videos // 20), start=args.videos))
        cap_file, names = save(root / "in", grown)
        t0 = time.perf_counter()
        grow = prepare_dataset(cap_file, names, root / "out", cfg, nlp=nlp)
        grow_s = time.perf_counter() - t0

    parser = RoleGraphParser(nlp)
    rng = random.Random(1)
    queries = [make_caption(rng) for _ in range(args.queries)]
    parser.parse_one(queries[0])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        parser.parse_one(q)
        times.append(time.perf_counter() - t0)

    rate = n_caps / cold_s
    cpu_rate = n_caps / cold_cpu
    print(f"captions: {n_caps} ({cold.num_unique_captions} distinct, {mean_words:.1f} words "
          f"on average), {args.videos} videos, workers={cold.workers}, "
          f"batch={args.batch_size}, cores={os.cpu_count()}")
    print(f"spaCy load: {load_s:.2f}s; load average {load_before:.1f} before, "
          f"{load_after:.1f} after the cold run (other work on the machine slows wall time)")
    print(f"prepare, cold: {cold_s:.1f}s wall = {rate:.0f} captions/s "
          f"(parsed {cold.num_parsed}); {cold_cpu:.1f} CPU-s = {cpu_rate:.0f} captions per "
          f"CPU-second; peak RSS of this process {rss_mb:.0f} MB")
    print(f"projected for 200,000 captions: {200_000 / rate:.0f}s wall at the measured rate "
          f"({200_000 / rate / 60:.1f} min; budget 5 min); "
          f"{200_000 / cpu_rate / cold.workers:.0f}s with {cold.workers} idle core(s)")
    print(f"prepare, all cached: {warm_s:.1f}s (parsed {warm.num_parsed}, "
          f"cached {warm.num_from_cache})")
    print(f"prepare, +5% videos: {grow_s:.1f}s (parsed {grow.num_parsed}, "
          f"cached {grow.num_from_cache})")
    print(f"single query parse: median {1000 * statistics.median(times):.1f} ms, "
          f"p95 {1000 * sorted(times)[int(0.95 * len(times))]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
