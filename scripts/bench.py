#!/usr/bin/env python3
"""`make bench`: hearth and the alternatives side by side in one run, one markdown table.

Runs the criterion micro-benchmarks (benches/: muxer, range math, index), the whole-process
ingest and scale benchmarks (scripts/bench_record.py) and the crypto, serving and motion
figures (scripts/bench_io.py); prints one table of figure / hearth / reference / ratio, and
rewrites the generated part of bench/RESULTS.md (between its `bench:begin` and `bench:end`
markers) with it, the machine and the date. Nothing here fails: it is a measurement, not a
test.

Knobs (environment), defaults in brackets; the defaults take ~15 min on a 2-core VM:
  BENCH_SKIP            sections to leave out, comma-separated: micro,ingest,scale,io []
  BENCH_SECONDS         measured seconds per ingest run [30]
  BENCH_STREAMS         stream counts for ingest [1,8,32]
  BENCH_SCALE_START / BENCH_SCALE_MAX / BENCH_SCALE_SECONDS / BENCH_SCALE_STEPS
                        the streams-per-core search [32 / 512 / 15 / 6]
  BENCH_CRYPTO_MB       bytes encrypted per crypto run [256]
  BENCH_CLIP_MB         size of the served clip [100]
  BENCH_REPEAT          repeats of each crypto/serving run (best or median is kept) [3]
  HEARTH_BENCH_SECONDS  criterion measurement time per micro-benchmark [2]
  BENCH_RESULTS         file to rewrite [bench/RESULTS.md]; empty: print only
"""
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_io  # noqa: E402
import bench_record  # noqa: E402

MIB = 1024 * 1024
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def env_int(name, default):
    return int(os.environ.get(name, default))


def machine():
    cpuinfo = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory": f"{int(mem.group(1)) / MIB:.1f} GiB" if mem else "?",
        "kernel": platform.release(),
        "arch": platform.machine(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": commit,
    }


def criterion_ns(*parts):
    path = os.path.join(ROOT, "target", "criterion", *parts, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def micro():
    env = {**os.environ, "HEARTH_BENCH_SECONDS": os.environ.get("HEARTH_BENCH_SECONDS", "2")}
    out = subprocess.run(["cargo", "bench", "--bench", "mux", "--bench", "range", "--bench", "index"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        return {"error": "cargo bench failed"}
    plans = [line for line in out.stdout.splitlines() if line.startswith("PLAN ")]
    return {
        "fragment_header": criterion_ns("mux", "fragment_header", "1s_1080p_25fps"),
        "fragment_with_payload": criterion_ns("mux", "fragment_with_payload", "1s_1080p_25fps"),
        "init_segment": criterion_ns("mux", "init_segment"),
        "parse": {name: criterion_ns("range", "parse", name) for name in
                  ("open_ended", "bounded", "suffix", "coalesced_3")},
        "first_chunk": {p: criterion_ns("range", "first_chunk_at", f"{p}pct") for p in (1, 50, 99)},
        "list_day": {d: criterion_ns("index", "list_day", f"day{d}") for d in (0, 182, 364)},
        "list_day_bounded": {d: criterion_ns("index", "list_day_bounded", f"day{d}") for d in (0, 182, 364)},
        "plans": plans,
    }


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"


def ms(ns):
    return f"{ns / 1e6:.2f} ms" if ns is not None else "—"


def us(ns):
    return f"{ns / 1e3:.1f} µs" if ns is not None else "—"


def table(r):
    rows = []

    def row(area, figure, hearth, reference, rat, goal=""):
        rows.append(f"| {area} | {figure} | {hearth} | {reference} | {rat} | {goal} |")

    for i in r.get("ingest", []):
        n = i["streams"]
        goal_cpu = "≤ 0.5 (target ≤ 0.35)" if n == 8 else "≤ 0.5"
        row("ingest", f"{n} stream(s): CPU s per stream-minute", f"{i['hearth_cpu']:.3f}",
            f"{i['ffmpeg_cpu']:.3f} (ffmpeg -c copy)", ratio(i["hearth_cpu"], i["ffmpeg_cpu"]), goal_cpu)
        row("ingest", f"{n} stream(s): peak RSS", f"{i['hearth_rss'] / MIB:.1f} MiB",
            f"{i['ffmpeg_rss'] / MIB:.1f} MiB (sum)", ratio(i["hearth_rss"], i["ffmpeg_rss"]),
            "≤ 32 MiB" if n == 8 else "")
        row("ingest", f"{n} stream(s): bytes written per stream ({i['seconds']} s + warm-up)",
            f"{i['hearth_bytes'] / 1e6:.1f} MB", f"{i['ffmpeg_bytes'] / 1e6:.1f} MB",
            ratio(i["hearth_bytes"], i["ffmpeg_bytes"]))
        row("ingest", f"{n} stream(s): frames lost", f"{i['lost']} of {i['recorded']}", "—", "—", "0")
    s = r.get("scale")
    if s:
        good = [t for t in s["trials"] if t["ok"] and t["streams"] == s["good"]]
        share = good[0]["core_share"] if good else None
        server = max((t["server_share"] for t in s["trials"]), default=0)
        found = f"{s['good']}" + (f" (lost frames at {s['bad']})" if s["bad"] else f" (search capped at {s['max']})")
        row("scale", "streams per core before frames are lost (hearth pinned to one core)", found,
            f"hearth used {share:.0%} of the core at {s['good']}" if share else "—", "—",
            "")
        if share:
            row("scale", "streams per core, extrapolated from hearth's CPU share",
                f"{s['good'] / share:.0f}", f"demo server peaked at {server:.0%} of its core", "—",
                "upper bound")
    c = r.get("crypto")
    if c:
        h, a, cp = c["hearth"], c["age"], c["cp"]
        row("crypto", f"encrypt + write {c['mb']} MiB, MB/s (fsynced)", f"{h['mbps']:.0f}",
            f"{a['mbps']:.0f} (age CLI)", ratio(h["mbps"], a["mbps"]))
        row("crypto", "encrypt + write, CPU s per GB", f"{h['cpu_per_gb']:.2f}", f"{a['cpu_per_gb']:.2f} (age CLI)",
            ratio(h["cpu_per_gb"], a["cpu_per_gb"]))
        row("crypto", "encrypt + write vs plain copy, MB/s", f"{h['mbps']:.0f}", f"{cp['mbps']:.0f} (cp)",
            ratio(h["mbps"], cp["mbps"]), "the physical limit")
    sv = r.get("serving")
    if sv:
        row("serving", f"decrypt + serve a {sv['mb']:.0f} MB clip over HTTP (curl, loopback), MB/s",
            f"{sv['hearth_mbps']:.0f}", f"{sv['age_mbps']:.0f} (age -d > /dev/null)",
            ratio(sv["hearth_mbps"], sv["age_mbps"]))
        row("serving", "CPU s per GB served", f"{sv['hearth_cpu_per_gb']:.2f}", f"{sv['age_cpu_per_gb']:.2f} (age -d)",
            ratio(sv["hearth_cpu_per_gb"], sv["age_cpu_per_gb"]))
        t = sv["ttfb_ms"]
        row("serving", "time to first byte, 64 KiB Range at 1 % / 50 % / 99 %",
            f"{t[1]:.2f} / {t[50]:.2f} / {t[99]:.2f} ms", "the 1 % request", ratio(t[99], t[1]),
            "flat (must not grow with the offset)")
    m = r.get("micro")
    if m and "error" not in m:
        fc = m["first_chunk"]
        row("serving", "in-process: open + seek + first 256 KiB at 1 % / 50 % / 99 % of 100 MiB",
            f"{us(fc[1])} / {us(fc[50])} / {us(fc[99])}", "the 1 % read", ratio(fc[99], fc[1]), "flat")
    mo = r.get("motion")
    if mo is not None:
        row("motion", "share of a core motion adds to one 640×360 5 fps stream",
            f"{100 * mo['core_share']:.1f} % ({mo['cpu_per_stream_min']:.3f} CPU s/stream-min)",
            f"{mo['ffmpeg_cpu_per_stream_min']:.3f} CPU s/stream-min: ffmpeg decode + scale, 1 thread",
            ratio(mo['cpu_per_stream_min'], mo['ffmpeg_cpu_per_stream_min']), "≤ 5 % of a core")
    if m and "error" not in m:
        ld, lb = m["list_day"], m["list_day_bounded"]
        for day in (0, 182, 364):
            row("index", f"list one day of 525,600 one-minute clips: day {day} of the year", ms(ld[day]),
                f"{ms(lb[day])} (bounded query)", ratio(ld[day], lb[day]), "< 10 ms")
        fh, fp = m["fragment_header"], m["fragment_with_payload"]
        ing8 = next((i for i in r.get("ingest", []) if i["streams"] == 8), None)
        row("mux", "1 s 1080p fragment (25 samples): moof + mdat header", us(fh), "—", "—")
        if fp is not None:
            per_min = fp * 60 / 1e9
            row("mux", "1 s fragment with its 500 kB payload assembled, CPU s per stream-minute", f"{per_min:.5f}",
                f"{ing8['hearth_cpu']:.3f} (hearth's whole ingest, 8 streams)" if ing8 else "—",
                ratio(per_min, ing8["hearth_cpu"]) if ing8 else "—")
        row("mux", "init segment", us(m["init_segment"]), "—", "—")
        p = m["parse"]
        row("range", "parse a Range header: open-ended / bounded / suffix / 3 coalesced",
            " / ".join(f"{p[k]:.0f} ns" if p[k] is not None else "—" for k in
                       ("open_ended", "bounded", "suffix", "coalesced_3")), "—", "—")
    head = ["| area | figure | hearth | reference | ratio (hearth ÷ reference) | goal |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + rows)


def report(r, m):
    lines = [f"## {m['date']} — {m['cores']}-core {m['arch']} ({m['cpu']}), {m['memory']}",
             "",
             f"Kernel {m['kernel']}; load average at the start {m['load']}; hearth {m['commit']}. "
             "The machine is shared with other builds: absolute figures are noise, the ratios "
             "(both sides measured in the same run, on the same core) are what to compare.",
             "",
             table(r)]
    plans = r.get("micro", {}).get("plans")
    if plans:
        lines += ["", "Query plans (`EXPLAIN QUERY PLAN`, from benches/index.rs):", "", "```"] + plans + ["```"]
    if r.get("scale"):
        lines += ["", "Scale search trials (hearth alone, pinned to one core):", "",
                  "| streams | frames lost | lag at stop | hearth's share of its core | demo server's share |",
                  "|---|---|---|---|---|"]
        for t in r["scale"]["trials"]:
            lines.append(f"| {t['streams']} | {t['lost']} of {t['recorded']} | {t['lag']:.2f} s | "
                         f"{t['core_share']:.0%} | {t['server_share']:.0%} |")
    return "\n".join(lines)


def write_results(path, text):
    old = open(path).read() if os.path.exists(path) else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in old or END not in old:
        old = old.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    before, rest = old.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(f"{before}{BEGIN}\n{text}\n{END}{after}")


def main():
    skip = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
    hearth = os.path.join(ROOT, "target", "release", "hearth")
    helper = bench_record.default_helper(hearth)
    rec = bench_record.parser().parse_args([])
    rec.seconds = env_int("BENCH_SECONDS", 30)
    rec.scale_seconds = env_int("BENCH_SCALE_SECONDS", 15)
    io = bench_io.parser().parse_args([])
    results = {}
    started = time.monotonic()
    m = machine()
    workdir = tempfile.mkdtemp(prefix="hearth-bench-")
    cameras = None
    try:
        if "micro" not in skip:
            print("bench: criterion micro-benchmarks (cargo bench)…", file=sys.stderr)
            results["micro"] = micro()
        if not {"ingest", "scale"} <= skip:
            wanted = ([] if "ingest" in skip else bench_record.stream_counts(rec)) + \
                ([] if "scale" in skip else [rec.scale_max])
            cameras = bench_record.Cameras(helper, rec, workdir, max(wanted))
        if "ingest" not in skip:
            print(f"bench: ingest, {rec.streams} streams, {rec.seconds} s each…", file=sys.stderr)
            results["ingest"] = bench_record.ingest(hearth, cameras, rec, workdir)
        if "scale" not in skip:
            print("bench: streams per core…", file=sys.stderr)
            results["scale"] = bench_record.scale(hearth, cameras, rec, workdir)
        if cameras:
            cameras.stop()
            cameras = None
        if "io" not in skip:
            print("bench: crypto, serving, motion…", file=sys.stderr)
            results["crypto"] = bench_io.crypto(hearth, helper, io, workdir)
            results["serving"] = bench_io.serving(hearth, helper, io, workdir)
            results["motion"] = bench_io.motion(hearth, io, workdir)
    finally:
        if cameras:
            cameras.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, m)
    text += f"\n\n`make bench` took {(time.monotonic() - started) / 60:.1f} min."
    print("\n" + text)
    out = os.environ.get("BENCH_RESULTS", os.path.join(ROOT, "bench", "RESULTS.md"))
    if out:
        write_results(out, text)
        print(f"\nbench: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
