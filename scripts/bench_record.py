#!/usr/bin/env python3
"""Whole-process recording benchmark: hearth vs `ffmpeg -c copy`, same streams, one run.

Serves identical H.264 streams from hearth's demo camera code (pre-encoded once, so serving
is cheap and identical for both sides; `bench_helper cameras`, several servers of at most 64
clients each) on 127.0.0.1, then records N streams for a fixed time with:
  - one `hearth serve` with N cameras, and
  - N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` processes (what most NVRs run),
each pinned to the same CPU core. Reports CPU seconds per stream-minute, peak RSS, bytes
written per stream, frames lost, and the ratios. Absolute numbers on a shared machine are
noise; ratios are not.

Frames lost (hearth): the demo server sends frame k of a session at k/fps seconds after the
first, and hearth anchors a session's first clip at that first frame's arrival, so by the
moment hearth is told to stop (t_stop) it should hold floor((t_stop - first_start) * fps) + 1
frames per camera. Lost = what is missing from that, less one frame per camera in flight at
t_stop. It counts frames dropped, gaps (reconnects) and a backlog hearth has not caught up on.

The scale search (--scale) doubles N from --scale-start while no frame is lost, then bisects
between the last good and first bad N (bounded by --scale-max and --scale-steps), hearth alone
pinned to one core: "streams per core before frames are lost" on this machine.

Usage: scripts/bench_record.py [--streams 1,8,32] [--seconds 60] [--width 1920 --height 1080
       --bitrate 4000000] [--core 1] [--scale] [--hearth target/release/hearth]
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
FPS = 25  # the demo camera's frame rate (PatternOptions::default)
CLIENTS_PER_SERVER = 48  # a demo camera takes 64 clients at most


def process_tree(pid):
    """`pid` and its descendants: hearth's cost includes its `hearth-media` helpers (motion
    detection, snapshots), which are processes of their own."""
    tree, i = [pid], 0
    while i < len(tree):
        try:
            for task in os.listdir(f"/proc/{tree[i]}/task"):
                with open(f"/proc/{tree[i]}/task/{task}/children") as f:
                    tree.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
        i += 1
    return tree


def cpu_seconds(pids):
    """CPU of `pids` and their descendants, including children they have reaped."""
    total = 0
    for pid in [p for root in pids for p in process_tree(root)]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime are fields 14-17 (1-based), i.e. 11..14 after ')'.
            total += sum(int(x) for x in fields[11:15])
        except FileNotFoundError:
            pass
    return total / CLK_TCK


def peak_rss_bytes(pid):
    """Peak RSS of `pid` plus that of each live descendant."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def pinned(core, argv):
    return ["taskset", "-c", str(core)] + argv if shutil.which("taskset") and core is not None else argv


def default_helper(hearth):
    return os.path.join(os.path.dirname(hearth), "examples", "bench_helper")


class Cameras:
    """`bench_helper cameras`: enough demo servers for `streams` clients at once."""

    def __init__(self, helper, args, workdir, streams):
        count = max(1, math.ceil(streams / CLIENTS_PER_SERVER))
        self.log = open(os.path.join(workdir, "cameras.log"), "w")
        self.proc = subprocess.Popen(
            pinned(args.camera_core, [helper, "cameras", str(count), str(args.width), str(args.height),
                                      str(args.bitrate), "20"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.urls = []
        for _ in range(count):
            line = self.proc.stdout.readline()
            match = re.search(r"(rtsp://\S+)", line)
            if not match:
                self.proc.kill()
                sys.exit(f"demo cameras did not start: {line!r}; see {workdir}/cameras.log")
            self.urls.append(match.group(1))

    def url(self, i):
        return self.urls[i // CLIENTS_PER_SERVER % len(self.urls)]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(pids, seconds, warmup=5, watch=()):
    """CPU seconds of `pids` over `seconds` after `warmup`; also of `watch` (e.g. the server)."""
    time.sleep(warmup)
    before, watch_before = cpu_seconds(pids), cpu_seconds(watch)
    time.sleep(seconds)
    return cpu_seconds(pids) - before, cpu_seconds(watch) - watch_before


def hearth_data_dir(hearth, workdir, name):
    """`hearth init` into workdir/name, web server on a free loopback port. Returns the config."""
    data = os.path.join(workdir, name)
    passfile = os.path.join(workdir, "pass")
    with open(passfile, "w") as f:
        f.write("benchmark passphrase")
    owner = os.path.join(workdir, "owner-password")
    with open(owner, "w") as f:
        f.write("benchmark owner password")
    subprocess.run([hearth, "init", "--data-dir", data, "--passphrase-file", passfile,
                    "--owner-password-file", owner],
                   check=True, stdout=subprocess.DEVNULL)
    config = os.path.join(data, "config.toml")
    with open(config) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write(text.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"'))
    return config, data, passfile


def frames_lost(hearth, config, n, t_stop):
    """(frames lost, frames recorded, worst lag in s) over the n cameras; see the module doc."""
    out = subprocess.run([hearth, "--config", config, "clips", "ls", "--json"],
                         check=True, capture_output=True, text=True).stdout
    by_camera = {}
    for clip in json.loads(out):
        by_camera.setdefault(clip["camera"], []).append(clip)
    lost = recorded = 0
    worst_lag = 0.0
    for i in range(n):
        clips = by_camera.get(f"cam{i}", [])
        frames = sum(c["frames"] for c in clips)
        recorded += frames
        if not clips:
            lost += 1  # nothing at all recorded: count it, the exact figure is unknowable
            worst_lag = math.inf
            continue
        first = min(c["start_us"] for c in clips)
        last_end = max(c["end_us"] for c in clips)
        expected = math.floor((t_stop * 1e6 - first) * FPS / 1e6) + 1
        lost += max(0, expected - frames - 1)
        worst_lag = max(worst_lag, t_stop - last_end / 1e6)
    return lost, recorded, worst_lag


def run_hearth(hearth, cameras, n, args, workdir, seconds=None, core=None):
    seconds = seconds or args.seconds
    config, data, _ = hearth_data_dir(hearth, workdir, f"hearth-{n}-{time.monotonic_ns()}")
    with open(config, "a") as f:
        for i in range(n):
            f.write(f'\n[[camera]]\nname = "cam{i}"\nurl = "{cameras.url(i)}"\n')
    log = open(os.path.join(workdir, f"hearth-{n}.log"), "w")
    proc = subprocess.Popen(pinned(args.core if core is None else core, [hearth, "--config", config, "serve"]),
                            stdout=log, stderr=log, env={**os.environ, "HEARTH_LOG": "warn"})
    cpu, server_cpu = measure([proc.pid], seconds, watch=[cameras.proc.pid])
    rss = peak_rss_bytes(proc.pid)
    t_stop = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    lost, recorded, lag = frames_lost(hearth, config, n, t_stop)
    result = {"cpu": cpu, "rss": rss, "bytes": dir_bytes(os.path.join(data, "clips")), "lost": lost,
              "recorded": recorded, "lag": lag, "server_cpu": server_cpu}
    shutil.rmtree(data, ignore_errors=True)
    return result


def run_ffmpeg(cameras, n, args, workdir):
    out = os.path.join(workdir, f"ffmpeg-{n}")
    os.makedirs(out)
    procs = []
    for i in range(n):
        argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", cameras.url(i),
                "-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
                os.path.join(out, f"cam{i}-%05d.mp4")]
        procs.append(subprocess.Popen(pinned(args.core, argv), stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(out, f"cam{i}.log"), "w")))
    cpu, _ = measure([p.pid for p in procs], args.seconds)
    rss = sum(peak_rss_bytes(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(timeout=30)
    result = {"cpu": cpu, "rss": rss, "bytes": dir_bytes(out)}
    shutil.rmtree(out, ignore_errors=True)
    return result


def stream_counts(args):
    return [int(x) for x in args.streams.split(",") if x]


def ingest(hearth, cameras, args, workdir):
    """One row per stream count: hearth and ffmpeg on the same streams."""
    rows = []
    for n in stream_counts(args):
        h = run_hearth(hearth, cameras, n, args, workdir)
        f = run_ffmpeg(cameras, n, args, workdir)
        minutes = n * args.seconds / 60
        rows.append({"streams": n, "seconds": args.seconds,
                     "hearth_cpu": h["cpu"] / minutes, "ffmpeg_cpu": f["cpu"] / minutes,
                     "hearth_rss": h["rss"], "ffmpeg_rss": f["rss"],
                     "hearth_bytes": h["bytes"] / n, "ffmpeg_bytes": f["bytes"] / n,
                     "lost": h["lost"], "recorded": h["recorded"], "lag": h["lag"]})
        print(f"bench_record: {n} streams: {rows[-1]}", file=sys.stderr)
    return rows


def scale(hearth, cameras, args, workdir):
    """Largest N (hearth alone, pinned to one core) with no frame lost; bounded search."""
    trials = []

    def ok(n):
        r = run_hearth(hearth, cameras, n, args, workdir, seconds=args.scale_seconds)
        r["streams"], r["core_share"] = n, r["cpu"] / args.scale_seconds
        r["server_share"] = r.pop("server_cpu") / args.scale_seconds
        r["ok"] = r["lost"] == 0 and r["lag"] < 2.0
        trials.append(r)
        print(f"bench_record: scale {n} streams: lost {r['lost']}, lag {r['lag']:.2f} s, "
              f"hearth {r['core_share']:.0%} of the core, server {r['server_share']:.0%}", file=sys.stderr)
        return r["ok"]

    good, bad, n = 0, None, args.scale_start
    for _ in range(args.scale_steps):
        if bad is None:
            if ok(n):
                good = n
                if n >= args.scale_max:
                    break
                n = min(n * 2, args.scale_max)
            else:
                bad = n
        else:
            if bad - good <= max(2, good // 8):
                break
            mid = (good + bad) // 2
            if ok(mid):
                good = mid
            else:
                bad = mid
    return {"good": good, "bad": bad, "max": args.scale_max, "seconds": args.scale_seconds, "trials": trials}


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", default=os.environ.get("BENCH_STREAMS", "1,8,32"))
    p.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 60)))
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--bitrate", type=int, default=4_000_000)
    p.add_argument("--core", type=int, default=1, help="core both recorders are pinned to")
    p.add_argument("--camera-core", type=int, default=0)
    p.add_argument("--scale", action="store_true", help="also search streams per core")
    p.add_argument("--scale-start", type=int, default=int(os.environ.get("BENCH_SCALE_START", 32)))
    p.add_argument("--scale-max", type=int, default=int(os.environ.get("BENCH_SCALE_MAX", 512)))
    p.add_argument("--scale-seconds", type=int, default=int(os.environ.get("BENCH_SCALE_SECONDS", 20)))
    p.add_argument("--scale-steps", type=int, default=int(os.environ.get("BENCH_SCALE_STEPS", 6)))
    p.add_argument("--hearth", default="target/release/hearth")
    p.add_argument("--helper", default=None, help="bench_helper (default: next to hearth, examples/)")
    return p


def ingest_table(rows, args):
    mib = 1024 * 1024
    out = [f"Recording {args.width}x{args.height} H.264 at {args.bitrate / 1e6:.1f} Mbit/s per stream, "
           f"{args.seconds} s measured, both pinned to core {args.core}", "",
           "| streams | hearth CPU s/stream-min | ffmpeg CPU s/stream-min | CPU ratio | hearth peak RSS | "
           "ffmpeg RSS (sum) | RSS ratio | bytes/stream hearth | ffmpeg | hearth frames lost |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hc, fc, hr, fr = r["hearth_cpu"], r["ffmpeg_cpu"], r["hearth_rss"], r["ffmpeg_rss"]
        out.append(f"| {r['streams']} | {hc:.3f} | {fc:.3f} | {hc / fc if fc else float('nan'):.2f} | "
                   f"{hr / mib:.1f} MiB | {fr / mib:.1f} MiB | {hr / fr if fr else float('nan'):.2f} | "
                   f"{r['hearth_bytes'] / 1e6:.1f} MB | {r['ffmpeg_bytes'] / 1e6:.1f} MB | "
                   f"{r['lost']} of {r['recorded']} |")
    return "\n".join(out)


def main():
    args = parser().parse_args()
    hearth = os.path.abspath(args.hearth)
    helper = os.path.abspath(args.helper or default_helper(hearth))
    workdir = tempfile.mkdtemp(prefix="hearth-bench-")
    cameras = Cameras(helper, args, workdir, max(stream_counts(args) + ([args.scale_max] if args.scale else [])))
    try:
        rows = ingest(hearth, cameras, args, workdir)
        print("\n" + ingest_table(rows, args))
        if args.scale:
            s = scale(hearth, cameras, args, workdir)
            print(f"\nstreams per core (hearth pinned to core {args.core}, {s['seconds']} s each): "
                  f"{s['good']} without loss" + (f", {s['bad']} lost frames" if s["bad"] else
                                                 f" (the search stops at {s['max']})"))
    finally:
        cameras.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
