#!/usr/bin/env python3
"""Side by side: cairn, restic and borg on the same data, in one run.

usage: benches/side-by-side/bench.py [--dataset volume|smallfiles] [--scale S]
           [--files N] [--data DIR] [--seed N] [--runs N]
           [--tools "cairn restic borg"] [--work DIR] [--cairn PATH] [--smoke] [--keep]
           [--restore-fs same|fresh]

Every run starts from fresh repositories (all encrypted with a password) and
times, for each tool in turn, under /usr/bin/time -v (wall, user, sys, peak
RSS):
  init, backup1, backup2 (after one day of changes), backup3 (no change),
  restore (full; verified against the source: path, type, mode, size, mtime,
  SHA-256, symlink target), restore1 (one small file, verified), and for the
  volume restoredb (its largest database file, verified; with --data, the
  tree's largest file).
Repository sizes (bytes of its files) are taken after each backup. A
mismatch in any restore stops the bench with exit status 1.

Writes WORK/results.json (every measurement, the medians over the runs and
each tool's ratio to cairn), WORK/results.svg (a chart of the medians) and
prints a table. A tool that is not installed is skipped with a message.
--smoke: scale 0.01 and one run, for a check in seconds.
--restore-fs fresh: every full restore goes into a new ext4 file system on a
loop device (root only), so neither tool pays for what earlier runs did to the
work directory's file system (docs/PERFORMANCE.md: creating files on an ext4
after many mass deletes took ~120 us a file against a few on a new one).
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402
import chart  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "side-by-side-bench"
ALL_TOOLS = ("cairn", "restic", "borg")
TIME_STEPS = ("backup1", "backup2", "backup3", "restore", "restore1", "restoredb")


def die(msg):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Measuring one command
# ---------------------------------------------------------------------------

def gnu_time():
    path = "/usr/bin/time"
    if os.access(path, os.X_OK):
        probe = subprocess.run([path, "-v", "true"], capture_output=True, text=True)
        if "Maximum resident set size" in probe.stderr:
            return path
    return None


def timed(cmd, log, cwd=None, env=None):
    """Run cmd; return wall, user and sys seconds and peak RSS in KiB.

    With GNU time the figures are what `/usr/bin/time -v` reports; without it
    they come from wait4(2) directly, which is where GNU time gets them."""
    tv = gnu_time()
    report = log + ".time"
    full = [tv, "-v", "-o", report] + cmd if tv else cmd
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with open(log, errors="replace") as f:
            tail = f.read()[-2000:]
        die(f"{' '.join(cmd)} failed with status {code}:\n{tail}")
    if not tv:
        return dict(wall_s=wall, user_s=usage.ru_utime, sys_s=usage.ru_stime,
                    peak_rss_kib=usage.ru_maxrss)
    return parse_time_v(report)


def parse_time_v(path):
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().rpartition(": ")
            fields[key] = value
    h_m_s = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(h_m_s)))
    return dict(wall_s=wall, user_s=float(fields["User time (seconds)"]),
                sys_s=float(fields["System time (seconds)"]),
                peak_rss_kib=int(fields["Maximum resident set size (kbytes)"]))


def tree_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(d, f)).st_size
    return total


# ---------------------------------------------------------------------------
# Verifying a restore
# ---------------------------------------------------------------------------

def entry(path):
    st = os.lstat(path)
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if os.path.isdir(path):
        return ("dir", st.st_mode & 0o7777)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return ("file", st.st_mode & 0o7777, st.st_size, st.st_mtime_ns, digest)


def manifest(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = entry(p)
    return out


def verify_tree(tool, step, source, restored):
    if not os.path.isdir(restored):
        die(f"{tool} {step}: nothing restored at {restored}")
    got = manifest(restored)
    bad = [p for p in sorted(set(source) | set(got)) if source.get(p) != got.get(p)]
    if bad:
        lines = [f"  {p}: source {source.get(p)} restored {got.get(p)}" for p in bad[:10]]
        die(f"{tool} {step}: restore differs from the source in {len(bad)} entries:\n"
            + "\n".join(lines))
    return len(got)


def verify_file(tool, step, source_path, restored):
    if not os.path.lexists(restored):
        die(f"{tool} {step}: {restored} was not restored")
    if entry(source_path) != entry(restored):
        die(f"{tool} {step}: {restored} differs: source {entry(source_path)} "
            f"restored {entry(restored)}")


# ---------------------------------------------------------------------------
# The tools
# ---------------------------------------------------------------------------

class Tool:
    """One backup program: how to init, back up and restore with it."""

    def __init__(self, name, exe, work):
        self.name, self.exe, self.dir = name, exe, os.path.join(work, name)
        self.repo = os.path.join(self.dir, "repo")
        self.cache = os.path.join(self.dir, "cache")
        self.env = dict(os.environ)

    def run(self, step, args, cwd=None):
        return timed(args, os.path.join(self.dir, step + ".log"), cwd=cwd, env=self.env)

    # cairn and restic share these command lines; borg has its own.
    def base(self):
        return [self.exe, "--repo", self.repo, "--cache-dir", self.cache, "--quiet"]

    def init(self):
        return self.run("init", self.base() + ["init"])

    def backup(self, n, vol):
        return self.run(f"backup{n}", self.base() + ["backup", vol])


class Cairn(Tool):
    def __init__(self, exe, work):
        super().__init__("cairn", exe, work)
        self.env["CAIRN_PASSWORD"] = PASSWORD

    def version(self):
        return subprocess.run([self.exe, "--version"], capture_output=True, text=True).stdout.strip()

    def settings(self):
        return "defaults (format 3: chunks 8K/32K/128K, zstd:3 in 256 KiB frames), encrypted"

    def restore(self, step, target, vol, rel=None):
        snap = f"latest:{rel}" if rel else "latest"
        m = self.run(step, self.base() + ["restore", snap, "--target", target])
        # The whole tree lands in the target; one file by its name.
        return m, os.path.join(target, os.path.basename(rel)) if rel else target


class Restic(Tool):
    def __init__(self, exe, work):
        super().__init__("restic", exe, work)
        self.env["RESTIC_PASSWORD"] = PASSWORD

    def version(self):
        return subprocess.run([self.exe, "version"], capture_output=True, text=True).stdout.strip()

    def settings(self):
        return "defaults (repository version 2, compression auto), encrypted"

    def restore(self, step, target, vol, rel=None):
        extra = ["--include", os.path.join(vol, rel)] if rel else []
        m = self.run(step, self.base() + ["restore", "latest", "--target", target] + extra)
        # restic restores under the absolute path that was backed up.
        return m, target + os.path.join(vol, rel or "")


class Borg(Tool):
    def __init__(self, exe, work):
        super().__init__("borg", exe, work)
        self.env.update(BORG_PASSPHRASE=PASSWORD, BORG_BASE_DIR=self.cache,
                        BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        self.last = None

    def version(self):
        return subprocess.run([self.exe, "--version"], capture_output=True, text=True).stdout.strip()

    def settings(self):
        return "--encryption repokey-blake2, --compression zstd,3 (lz4 by default)"

    def init(self):
        return self.run("init", [self.exe, "init", "--encryption", "repokey-blake2", self.repo])

    def backup(self, n, vol):
        self.last = f"{self.repo}::backup{n}"
        return self.run(f"backup{n}", [self.exe, "create", "--compression", "zstd,3",
                                       self.last, vol])

    def restore(self, step, target, vol, rel=None):
        # borg extracts into the working directory, without the leading '/'.
        os.makedirs(target)
        path = os.path.join(vol, rel or "").lstrip("/").rstrip("/")
        m = self.run(step, [self.exe, "extract", self.last] + ([path] if rel else []), cwd=target)
        return m, os.path.join(target, path)


def find_tools(names, work, cairn_bin):
    found = []
    for name in names:
        if name == "cairn":
            exe = cairn_bin
            if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
                die(f"no cairn binary at {exe} (cargo build --release, or --cairn PATH)")
        else:
            exe = shutil.which(name)
            if not exe:
                print(f"{name}: not installed, skipped")
                continue
        found.append({"cairn": Cairn, "restic": Restic, "borg": Borg}[name](exe, work))
    return found


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------

class Dataset:
    def __init__(self, a, work):
        self.kind, self.seed = ("dir" if a.data else a.dataset), a.seed
        if self.kind == "dir":
            self.key = os.path.basename(os.path.normpath(a.data))
            self.base = os.path.abspath(a.data)
            return
        if self.kind == "volume":
            self.scale = a.scale
            self.key = f"volume-s{a.seed}-x{a.scale:g}"
        else:
            self.files = a.files if a.files else max(200, round(250_000 * a.scale))
            self.key = f"smallfiles-s{a.seed}-n{self.files}"
        self.base = os.path.join(work, "data", self.key)

    def describe(self):
        d = {"kind": self.kind, "seed": self.seed, "dir": self.base}
        if self.kind == "dir":
            del d["seed"]
        elif self.kind == "volume":
            d["scale"] = self.scale
        else:
            d["files"] = self.files
        return d

    def make(self):
        """Generate the base tree once; later runs and benches reuse it."""
        done = self.base + ".done"
        if self.kind == "dir" or os.path.exists(done):
            return
        shutil.rmtree(self.base, ignore_errors=True)
        print(f"generating {self.base} ...", flush=True)
        if self.kind == "volume":
            gen.gen_volume(self.base, self.scale, self.seed)
        else:
            gen.gen_smallfiles(self.base, self.files, self.seed)
        open(done, "w").close()

    def mutate(self, vol):
        if self.kind == "volume":
            gen.mutate_volume(vol, self.scale, self.seed, 1)
        elif self.kind == "dir":
            pass  # a tree of one's own has no day of changes: backup2 changes nothing
        else:
            gen.mutate_smallfiles(vol, self.files, self.seed, 1)

    def one_file(self, vol):
        """A small file (restore1) and, for the volume, the largest database file."""
        if self.kind == "volume":
            conf = sorted(os.listdir(os.path.join(vol, "etc/app/conf.d")))[0]
            return f"etc/app/conf.d/{conf}", "db/main/16384"
        if self.kind == "smallfiles":
            return "d00000/f0000001", None
        files = []
        for d, dirs, names in os.walk(vol):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append((os.path.getsize(p), os.path.relpath(p, vol)))
        if not files:
            die(f"{self.base} holds no regular file")
        small = next((rel for size, rel in files if 0 < size <= 64 << 10), files[0][1])
        return small, max(files)[1]


# ---------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def restore_fs(kind, mountpoint, size):
    """A directory to restore under: `mountpoint` itself (same), or a new
    ext4 of `size` bytes mounted there for the duration (fresh)."""
    os.makedirs(mountpoint, exist_ok=True)
    if kind == "same":
        yield mountpoint
        return
    img = mountpoint + ".img"
    with open(img, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
    subprocess.run(["mount", "-o", "loop", img, mountpoint], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=True)
        os.remove(img)


def one_run(run, tools, data, work, results, fs_kind="same"):
    vol = os.path.join(work, "vol")
    for t in tools:
        shutil.rmtree(t.dir, ignore_errors=True)
        os.makedirs(t.dir)
    shutil.rmtree(vol, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", data.base, vol], check=True)
    load = os.getloadavg()[0]

    def record(tool, step, m):
        results["measurements"].append(dict(run=run, tool=tool.name, step=step, **m))
        print(f"  run {run} {tool.name:<6} {step:<9} {m['wall_s']:8.2f} s "
              f"{m['peak_rss_kib'] / 1024:8.1f} MiB", flush=True)

    def size(tool, after):
        results["sizes"].append(dict(run=run, tool=tool.name, after=after,
                                     bytes=tree_bytes(tool.repo)))

    for t in tools:
        record(t, "init", t.init())
    logical = [tree_bytes(vol)]
    for t in tools:
        record(t, "backup1", t.backup(1, vol))
        size(t, "backup1")
    data.mutate(vol)
    logical += [tree_bytes(vol)] * 2
    results["logical"].append(dict(run=run, bytes=sum(logical)))
    for t in tools:
        record(t, "backup2", t.backup(2, vol))
        size(t, "backup2")
    for t in tools:
        record(t, "backup3", t.backup(3, vol))
        size(t, "backup3")

    source = manifest(vol)
    small, large = data.one_file(vol)
    fs_size = 2 * tree_bytes(vol) + (1 << 30)
    for t in tools:
        with restore_fs(fs_kind, os.path.join(t.dir, "fs"), fs_size) as under:
            # A subdirectory: a new file system's lost+found is not restored.
            target = os.path.join(under, "restore")
            m, where = t.restore("restore", target, vol)
            record(t, "restore", m)
            entries = verify_tree(t.name, "restore", source, where)
            shutil.rmtree(target)
        for step, rel in (("restore1", small), ("restoredb", large)):
            if rel is None:
                continue
            target = os.path.join(t.dir, step)
            m, where = t.restore(step, target, vol, rel)
            record(t, step, m)
            verify_file(t.name, step, os.path.join(vol, rel), where)
            shutil.rmtree(target)
        results["verified"].append(dict(run=run, tool=t.name, entries=entries, ok=True))
        print(f"  run {run} {t.name:<6} restores verified ({entries} entries)", flush=True)
    results["load"].append(dict(run=run, start=load, end=os.getloadavg()[0]))


def summarize(results, tools):
    med = {}
    for t in tools:
        steps = {}
        for step in ("init",) + TIME_STEPS:
            ms = [m for m in results["measurements"] if m["tool"] == t and m["step"] == step]
            if ms:
                steps[step] = {k: statistics.median(m[k] for m in ms)
                               for k in ("wall_s", "user_s", "sys_s", "peak_rss_kib")}
                # CPU seconds: steadier than wall time on a shared machine.
                steps[step]["cpu_s"] = statistics.median(m["user_s"] + m["sys_s"] for m in ms)
        sizes = {}
        for after in ("backup1", "backup2", "backup3"):
            bs = [s["bytes"] for s in results["sizes"] if s["tool"] == t and s["after"] == after]
            if bs:
                sizes[after] = statistics.median(bs)
        steps["repo_bytes"] = sizes
        if "backup1" in sizes and "backup2" in sizes:
            steps["growth2_bytes"] = sizes["backup2"] - sizes["backup1"]
        # The three snapshots' bytes over the repository's: higher is better.
        steps["dedup"] = statistics.median(
            lg["bytes"] / s["bytes"] for lg in results["logical"] for s in results["sizes"]
            if s["tool"] == t and s["after"] == "backup3" and s["run"] == lg["run"])
        steps["rss_backup_kib"] = max(steps[s]["peak_rss_kib"] for s in
                                      ("backup1", "backup2", "backup3") if s in steps)
        steps["rss_restore_kib"] = steps["restore"]["peak_rss_kib"]
        med[t] = steps
    results["medians"] = med
    results["ratios_to_cairn"] = {}
    if "cairn" not in med:
        return
    c = med["cairn"]
    for t in tools:
        if t == "cairn":
            continue
        o, r = med[t], {}
        for step in TIME_STEPS:
            if step in o and step in c:
                r[step] = o[step]["wall_s"] / max(c[step]["wall_s"], 0.005)
        for step in TIME_STEPS:
            if step in o and step in c:
                r["cpu_" + step] = o[step]["cpu_s"] / max(c[step]["cpu_s"], 0.005)
        r["rss_backup"] = o["rss_backup_kib"] / c["rss_backup_kib"]
        r["rss_restore"] = o["rss_restore_kib"] / c["rss_restore_kib"]
        r["repo1"] = o["repo_bytes"]["backup1"] / c["repo_bytes"]["backup1"]
        r["growth2"] = o["growth2_bytes"] / max(c["growth2_bytes"], 1)
        # Inverted, so that above 1 still means cairn does better.
        r["dedup"] = c["dedup"] / o["dedup"]
        results["ratios_to_cairn"][t] = r


def table(results, tools):
    med = results["medians"]
    others = [t for t in tools if t != "cairn" and "cairn" in med]
    head = ["step"] + list(tools) + [f"{t}/cairn" for t in others]
    rows = []

    def row(label, value, ratio_key):
        cells = [label] + [value(med[t]) for t in tools]
        cells += [f"{results['ratios_to_cairn'][t][ratio_key]:.2f}" for t in others]
        rows.append(cells)

    for step in TIME_STEPS:
        if step in med[tools[0]]:
            row(f"{step} s", lambda m, s=step: f"{m[s]['wall_s']:.2f}", step)
    for step in TIME_STEPS:
        if step in med[tools[0]]:
            row(f"{step} CPU s", lambda m, s=step: f"{m[s]['cpu_s']:.2f}", "cpu_" + step)
    row("peak RSS backup MiB", lambda m: f"{m['rss_backup_kib'] / 1024:.0f}", "rss_backup")
    row("peak RSS restore MiB", lambda m: f"{m['rss_restore_kib'] / 1024:.0f}", "rss_restore")
    row("repo after backup1 MB", lambda m: f"{m['repo_bytes']['backup1'] / 1e6:.1f}", "repo1")
    row("growth backup2 MB", lambda m: f"{m['growth2_bytes'] / 1e6:.1f}", "growth2")
    row("dedup (3 snapshots / repo)", lambda m: f"{m['dedup']:.2f}", "dedup")
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))) + " |"
    lines = [fmt(head), "|" + "|".join("-" * (w + 1) + (":" if i else "-")
                                       for i, w in enumerate(widths)) + "|"]
    return "\n".join(lines + [fmt(r) for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description="cairn, restic and borg side by side")
    ap.add_argument("--dataset", choices=("volume", "smallfiles"), default="volume")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="volume: 1 is about 1 GiB; smallfiles: 250,000 files per 1")
    ap.add_argument("--files", type=int, default=0, help="smallfiles: this many files")
    ap.add_argument("--data", help="back up a copy of this tree instead of generated data "
                    "(no day of changes; restoredb restores its largest file)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--tools", default=" ".join(ALL_TOOLS))
    ap.add_argument("--work", default="/tmp/cairn-side-by-side")
    ap.add_argument("--cairn", default=os.environ.get("CAIRN_BIN")
                    or os.path.join(ROOT, "target/release/cairn"))
    ap.add_argument("--smoke", action="store_true", help="scale 0.01, one run")
    ap.add_argument("--restore-fs", choices=("same", "fresh"), default="same",
                    help="fresh: each full restore into a new loop-mounted ext4 (root only)")
    ap.add_argument("--keep", action="store_true", help="keep the repositories of the last run")
    ap.add_argument("--report", metavar="RESULTS_JSON",
                    help="only summarize an earlier run's results.json again (table, medians, chart)")
    a = ap.parse_args(argv)
    if a.report:
        return report(a.report)
    if a.smoke:
        a.scale, a.runs = 0.01, 1
    if a.restore_fs == "fresh" and (os.geteuid() != 0 or not shutil.which("mkfs.ext4")):
        die("--restore-fs fresh needs root and mkfs.ext4 (loop mounts)")
    names = a.tools.split()
    if not names or any(n not in ALL_TOOLS for n in names):
        die(f"--tools takes names among {' '.join(ALL_TOOLS)}")
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    tools = find_tools(names, os.path.join(work, "run"), os.path.abspath(a.cairn))
    if not tools:
        die("no tool to run")

    data = Dataset(a, work)
    data.make()
    results = {
        "bench": "benches/side-by-side/bench.py",
        "command": shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "system": platform.platform(),
                    "loadavg_start": os.getloadavg()},
        "dataset": dict(data.describe(), bytes=tree_bytes(data.base)),
        "tools": {t.name: {"version": t.version(), "settings": t.settings()} for t in tools},
        "runs": a.runs, "restore_fs": a.restore_fs, "measurements": [], "sizes": [], "verified": [], "load": [],
        "logical": [],
    }
    print(f"{data.key}: {results['dataset']['bytes'] / 1e6:.1f} MB; "
          f"tools: {', '.join(t.name for t in tools)}; load {os.getloadavg()[0]:.1f}")
    for run in range(1, a.runs + 1):
        one_run(run, tools, data, os.path.join(work, "run"), results, a.restore_fs)
    if not a.keep:
        shutil.rmtree(os.path.join(work, "run"))
    results["machine"]["loadavg_end"] = os.getloadavg()
    summarize(results, [t.name for t in tools])

    write(results, os.path.join(work, "results.json"))


def write(results, out):
    """Write results.json and results.svg beside it; print the table."""
    names = list(results["tools"])
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    svg = os.path.splitext(out)[0] + ".svg"
    with open(svg, "w") as f:
        f.write(chart.render(results, names))
    m = results["machine"]
    print(f"\n{os.path.basename(results['dataset']['dir'])}, medians of {results['runs']} run(s), "
          f"load {m['loadavg_start'][0]:.1f} to {m['loadavg_end'][0]:.1f} on {m['cpus']} CPUs\n")
    print(table(results, names))
    for t, r in results["ratios_to_cairn"].items():
        print(f"RATIOS {t}/cairn: " + "  ".join(f"{k} {v:.2f}" for k, v in r.items()))
    print(f"\nall restores verified; wrote {out} and {svg}")


def report(path):
    with open(path) as f:
        results = json.load(f)
    summarize(results, list(results["tools"]))
    write(results, path)


if __name__ == "__main__":
    main()
