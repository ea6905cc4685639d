#!/usr/bin/env python3
"""Deterministic datasets for the side-by-side benchmark (stdlib only).

    gen.py volume DIR [--scale S] [--seed N]         a container volume
    gen.py mutate DIR [--scale S] [--seed N] [--round R]
                                                     one day of changes to it
    gen.py smallfiles DIR [--files N] [--seed N]     many tiny files
    gen.py smallfiles-mutate DIR [--files N] [--seed N] [--round R]
                                                     every 100th of them rewritten

The same arguments give the same bytes, names, modes and mtimes with the
same Python on any machine: every file draws from its own generator seeded by (seed, its path),
and mutations choose their victims from the sorted listing of the tree.

The volume at scale 1 is 986 MB of files in 31,211 entries:
  src/      source-like text in nested project trees (zstd -3: about 3.5x)
  media/    incompressible files of 64 KiB to 16 MiB
  db/       database files of 8 KiB pages: a header, rows, free space
  logs/     timestamped log lines, rotated
  vendor/, etc.bak/, backup/
            duplicated directories (copies of parts of src/, etc/, media/)
  etc/, run/ configuration files, empty files and directories, symlinks
A day (`mutate`) rewrites 1% of the database pages (half scattered, half in
four hot runs), appends to the current log, edits, adds, deletes and touches
source files and adds one media file.
"""

import argparse
import os
import random
import shutil
import struct
import sys

PAGE = 8192
EPOCH = 1_700_000_000  # every mtime is EPOCH plus a deterministic offset
DAY = 86_400
MIB = 1 << 20


def rng_for(seed, *parts):
    # A str seed is hashed with SHA-512 by random.Random: stable across runs.
    return random.Random(":".join(str(p) for p in (seed,) + parts))


def write(path, data, mtime, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


# ---------------------------------------------------------------------------
# Text: lines drawn from a pool, so files compress like source code does
# ---------------------------------------------------------------------------

SYLLABLES = ("ka to sa ri mo ne lu pa di ve go fi an el or us in at "
             "ex un re de co pro sub ter mil zen qua bo").split()
KEYWORDS = ("fn let if else for while return match struct impl pub use "
            "mod const static type enum trait where self def class import "
            "from try except with yield async await").split()


def word(rng):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))


def line_pool(seed, n):
    rng = rng_for(seed, "lines")
    words = [word(rng) for _ in range(3000)]
    out = []
    for _ in range(n):
        indent = "    " * rng.choice((0, 1, 1, 2, 2, 3))
        shape = rng.random()
        if shape < 0.1:
            out.append(b"\n")
            continue
        if shape < 0.2:
            text = "// " + " ".join(rng.choices(words, k=rng.randint(3, 10)))
        elif shape < 0.6:
            text = (f"{rng.choice(KEYWORDS)} {rng.choice(words)}_{rng.choice(words)} = "
                    f"{rng.choice(words)}({rng.choice(words)}, {rng.randint(0, 4096)});")
        else:
            text = (f"{rng.choice(KEYWORDS)} {rng.choice(words)}("
                    f"{', '.join(rng.choices(words, k=rng.randint(0, 4)))}) {{")
        out.append((indent + text + "\n").encode())
    return out


def text_bytes(rng, pool, size):
    # Average line length is about 40 bytes; overshoot, then cut.
    return b"".join(rng.choices(pool, k=size // 30 + 1))[:size]


# ---------------------------------------------------------------------------
# Database pages
# ---------------------------------------------------------------------------

def row_pool(seed, n):
    rng = rng_for(seed, "rows")
    words = [word(rng) for _ in range(2000)]
    rows = []
    for i in range(n):
        name = " ".join(rng.choices(words, k=rng.randint(1, 6))).encode()
        rows.append(struct.pack("<IHqd", i, len(name), rng.randint(0, 1 << 40),
                                rng.random() * 1000) + name)
    return rows


def db_page(rng, rows, number, lsn):
    # Header (page number, LSN, free-space offset), rows from the front,
    # zeroed free space: the layout of common database page formats.
    body = bytearray()
    fill = rng.randint(PAGE // 2, PAGE - 512)
    while len(body) < fill:
        body += rng.choice(rows)
    body = bytes(body[:fill])
    header = struct.pack("<QQI", number, lsn, len(body) + 20)
    return header + body + bytes(PAGE - len(header) - len(body))


def db_file(seed, rows, rel, pages, lsn):
    rng = rng_for(seed, rel, lsn)
    return b"".join(db_page(rng, rows, n, lsn) for n in range(pages))


# ---------------------------------------------------------------------------
# The volume
# ---------------------------------------------------------------------------

def log_lines(rng, start, size):
    levels = (b"INFO", b"INFO", b"INFO", b"DEBUG", b"WARN", b"ERROR")
    msgs = [f"request {w} handled in {{}} ms".encode() for w in
            ("GET /api/items", "POST /api/orders", "GET /health", "PUT /api/user")]
    msgs += [b"connection pool resized to {}", b"cache miss for key {}",
             b"worker {} finished batch", b"retrying upload, attempt {}"]
    out, t, n = [], start, 0
    while n < size:
        t += rng.randint(0, 3)
        line = b"2026-%02d-%02dT%02d:%02d:%02dZ %s %s\n" % (
            1 + t // (30 * DAY) % 12, 1 + t // DAY % 28, t // 3600 % 24,
            t // 60 % 60, t % 60, rng.choice(levels),
            rng.choice(msgs).replace(b"{}", str(rng.randint(0, 9999)).encode()))
        out.append(line)
        n += len(line)
    return b"".join(out)[:size], t


def log_uniform(rng, lo, hi):
    return int(lo * (hi / lo) ** rng.random())


def gen_volume(root, scale, seed):
    if os.path.exists(root):
        sys.exit(f"gen.py: {root} exists; remove it or choose another directory")
    pool = line_pool(seed, 20_000)
    rows = row_pool(seed, 20_000)
    rng = rng_for(seed, "layout")
    n = lambda count: max(1, round(count * scale))

    # src/: projects of nested directories, files of 200 B to 64 KiB.
    budget, i = n(300 * MIB), 0
    projects = []
    while budget > 0:
        proj = f"src/proj{len(projects):02d}_{word(rng)}"
        projects.append(proj)
        # About 20 files per directory, nested up to three deep.
        dirs = [""]
        for _ in range(max(1, round(60 * scale))):
            parent = rng.choice(dirs)
            if parent.count("/") < 3:
                dirs.append(f"{parent}/{word(rng)}".lstrip("/"))
        for _ in range(max(5, round(1200 * scale))):
            sub = rng.choice(dirs)
            ext = rng.choice((".rs", ".py", ".go", ".c", ".h", ".md", ".toml"))
            rel = os.path.join(proj, sub, f"{word(rng)}_{i}{ext}")
            size = log_uniform(rng, 200, 64 << 10)
            frng = rng_for(seed, rel)
            mode = 0o755 if ext == ".py" and frng.random() < 0.2 else 0o644
            write(os.path.join(root, rel), text_bytes(frng, pool, size),
                  EPOCH - frng.randint(0, 300 * DAY), mode)
            budget -= size
            i += 1
            if budget <= 0:
                break

    # media/: incompressible.
    budget, i = n(300 * MIB), 0
    while budget > 0:
        size = min(budget, log_uniform(rng, 64 << 10, 16 * MIB))
        rel = f"media/{['photos', 'video', 'audio'][i % 3]}/{word(rng)}_{i}.bin"
        frng = rng_for(seed, rel)
        write(os.path.join(root, rel), frng.randbytes(size), EPOCH - frng.randint(0, 900 * DAY))
        budget -= size
        i += 1

    # db/: one large table file, a few small ones; 8 KiB pages.
    for rel, mib in (("db/main/16384", 160), ("db/main/16390", 24),
                     ("db/main/16402", 8), ("db/main/pg_control", 0.0625)):
        pages = max(1, int(mib * MIB * scale) // PAGE)
        write(os.path.join(root, rel), db_file(seed, rows, rel, pages, 1), EPOCH, 0o600)

    # logs/: a current log and rotated ones.
    t = EPOCH
    for k in range(4, -1, -1):
        rel = "logs/app.log" + (f".{k}" if k else "")
        data, t = log_lines(rng_for(seed, rel), t, n(8 * MIB))
        write(os.path.join(root, rel), data, t)

    # etc/: small configuration files; run/: empty files and directories.
    for k in range(n(120)):
        rel = f"etc/app/conf.d/{k:03d}-{word(rng)}.conf"
        frng = rng_for(seed, rel)
        write(os.path.join(root, rel), text_bytes(frng, pool, frng.randint(100, 12_000)),
              EPOCH - DAY, 0o644)
    for k in range(n(40)):
        os.makedirs(os.path.join(root, f"run/empty/e{k:02d}"), exist_ok=True)
        write(os.path.join(root, f"run/lock{k:02d}"), b"", EPOCH)
    links = os.path.join(root, "links")
    os.makedirs(links, exist_ok=True)
    for k in range(n(200)):
        link = os.path.join(links, f"l{k:03d}")
        os.symlink(f"../etc/app/conf.d/{k % 7}-missing" if k % 10 == 0 else "../logs/app.log",
                   link)
        os.utime(link, (EPOCH, EPOCH), follow_symlinks=False)

    # Duplicated directories: exact copies, as volumes hold them.
    copy_tree(root, projects[0], "vendor/" + os.path.basename(projects[0]))
    copy_tree(root, "etc", "etc.bak")
    copy_tree(root, "media/photos", "backup/photos")
    finish_dirs(root)


def copy_tree(root, src, dst):
    shutil.copytree(os.path.join(root, src), os.path.join(root, dst), symlinks=True)


def finish_dirs(root):
    # Directory mtimes last, deepest first, so writing children does not move them.
    for d, _, _ in sorted(os.walk(root), key=lambda w: -w[0].count(os.sep)):
        os.utime(d, (EPOCH, EPOCH))


def listing(root, top):
    out = []
    for d, dirs, files in os.walk(os.path.join(root, top)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def mutate_volume(root, scale, seed, round_):
    rng = rng_for(seed, "mutate", round_)
    now = EPOCH + round_ * DAY
    n = lambda count: max(1, round(count * scale))
    pool = line_pool(seed, 20_000)
    rows = row_pool(seed, 20_000)

    # Database: 1% of each file's pages, half scattered, half in four hot runs.
    for rel in listing(root, "db"):
        path = os.path.join(root, rel)
        pages = os.path.getsize(path) // PAGE
        count = max(1, pages // 100)
        chosen = set(rng.sample(range(pages), min(pages, max(1, count // 2))))
        run = max(1, count // 8)
        for _ in range(4):
            start = rng.randrange(max(1, pages - run))
            chosen.update(range(start, min(pages, start + run)))
        prng = rng_for(seed, rel, "day", round_)
        with open(path, "r+b") as f:
            for p in sorted(chosen):
                f.seek(p * PAGE)
                f.write(db_page(prng, rows, p, round_ + 1))
        os.utime(path, (now, now))

    # Logs: append to the current one.
    path = os.path.join(root, "logs/app.log")
    data, _ = log_lines(rng_for(seed, "log-day", round_), now, n(2 * MIB))
    with open(path, "ab") as f:
        f.write(data)
    os.utime(path, (now, now))

    src = listing(root, "src")
    # Edits: a few lines replaced in the middle of the file.
    for rel in rng.sample(src, min(len(src), n(300))):
        path = os.path.join(root, rel)
        with open(path, "rb") as f:
            data = f.read()
        at = rng.randrange(len(data) + 1)
        frng = rng_for(seed, rel, "edit", round_)
        data = data[:at] + text_bytes(frng, pool, frng.randint(20, 400)) + data[at + 100:]
        write(path, data, now, os.stat(path).st_mode & 0o777)
    # Touches: mtime only.
    for rel in rng.sample(src, min(len(src), n(500))):
        os.utime(os.path.join(root, rel), (now, now))
    # Deletions, then additions (some in a new directory).
    for rel in rng.sample(src, min(len(src) // 2, n(100))):
        os.remove(os.path.join(root, rel))
    for k in range(n(200)):
        base = os.path.dirname(rng.choice(src)) if k % 4 else f"src/new_day{round_}"
        rel = f"{base}/added_{round_}_{k}.rs"
        frng = rng_for(seed, rel)
        write(os.path.join(root, rel), text_bytes(frng, pool, log_uniform(frng, 200, 32 << 10)), now)

    rel = f"media/photos/day{round_}.bin"
    write(os.path.join(root, rel), rng_for(seed, rel).randbytes(n(4 * MIB)), now)
    finish_dirs(root)


# ---------------------------------------------------------------------------
# Many small files (the shape of benches/smallfiles.sh)
# ---------------------------------------------------------------------------

def small_path(root, i):
    return os.path.join(root, f"d{i // 200:05d}", f"f{i:07d}")


def gen_smallfiles(root, files, seed):
    if os.path.exists(root):
        sys.exit(f"gen.py: {root} exists; remove it or choose another directory")
    rng = random.Random(seed)
    for i in range(files):
        if i % 200 == 0:
            os.makedirs(os.path.dirname(small_path(root, i)))
        with open(small_path(root, i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(0, 201)))


def mutate_smallfiles(root, files, seed, round_):
    rng = rng_for(seed, "smallfiles", round_)
    for i in range(0, files, 100):
        with open(small_path(root, i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(1, 201)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("volume", "mutate", "smallfiles", "smallfiles-mutate"))
    ap.add_argument("dir")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--round", type=int, default=1)
    a = ap.parse_args(argv)
    if a.what == "volume":
        gen_volume(a.dir, a.scale, a.seed)
    elif a.what == "mutate":
        mutate_volume(a.dir, a.scale, a.seed, a.round)
    elif a.what == "smallfiles":
        gen_smallfiles(a.dir, a.files, a.seed)
    else:
        mutate_smallfiles(a.dir, a.files, a.seed, a.round)


if __name__ == "__main__":
    main()
