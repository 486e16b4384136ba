#!/usr/bin/env python3
"""Whole-process recording benchmark: hearth vs `ffmpeg -c copy`, same streams, one run.

Serves N identical H.264 streams from hearth's built-in demo camera (pre-encoded once, so
serving is cheap and identical for both sides) on 127.0.0.1, then records them for a fixed
time with:
  - one `hearth serve` with N cameras, and
  - N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` processes (what most NVRs run),
each pinned to the same CPU core. Reports CPU seconds per stream-minute, peak RSS, bytes
written, and the ratios. Absolute numbers on a shared machine are noise; ratios are not.

Usage: scripts/bench_record.py [--streams 1,8] [--seconds 60] [--width 1920 --height 1080
       --bitrate 4000000] [--core 1] [--hearth target/release/hearth]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime are fields 14-17 (1-based), i.e. 11..14 after ')'.
            total += sum(int(x) for x in fields[11:15])
        except FileNotFoundError:
            pass
    return total / CLK_TCK


def peak_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


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
    return ["taskset", "-c", str(core)] + argv if shutil.which("taskset") else argv


def start_demo_camera(hearth, args, workdir):
    log = open(os.path.join(workdir, "camera.log"), "w")
    proc = subprocess.Popen(
        pinned(args.camera_core, [hearth, "demo-camera", "--listen", "127.0.0.1:0",
                                  "--width", str(args.width), "--height", str(args.height),
                                  "--bitrate", str(args.bitrate), "--seconds", "20"]),
        stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    match = re.search(r"(rtsp://\S+)", line)
    if not match:
        proc.kill()
        sys.exit(f"demo camera did not start: {line!r}; see {workdir}/camera.log")
    return proc, match.group(1)


def measure(pids, seconds, warmup=5):
    time.sleep(warmup)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    after = cpu_seconds(pids)
    return after - before


def run_hearth(hearth, url, n, args, workdir):
    data = os.path.join(workdir, f"hearth-{n}")
    passfile = os.path.join(workdir, "pass")
    with open(passfile, "w") as f:
        f.write("benchmark passphrase")
    subprocess.run([hearth, "init", "--data-dir", data, "--passphrase-file", passfile],
                   check=True, stdout=subprocess.DEVNULL)
    config = os.path.join(data, "config.toml")
    with open(config, "a") as f:
        for i in range(n):
            f.write(f'\n[[camera]]\nname = "cam{i}"\nurl = "{url}"\n')
    log = open(os.path.join(workdir, f"hearth-{n}.log"), "w")
    proc = subprocess.Popen(pinned(args.core, [hearth, "--config", config, "serve"]),
                            stdout=log, stderr=log, env={**os.environ, "HEARTH_LOG": "warn"})
    cpu = measure([proc.pid], args.seconds)
    rss = peak_rss_bytes(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return cpu, rss, dir_bytes(os.path.join(data, "clips"))


def run_ffmpeg(url, n, args, workdir):
    out = os.path.join(workdir, f"ffmpeg-{n}")
    os.makedirs(out)
    procs = []
    for i in range(n):
        argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                "-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
                os.path.join(out, f"cam{i}-%05d.mp4")]
        procs.append(subprocess.Popen(pinned(args.core, argv), stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(out, f"cam{i}.log"), "w")))
    cpu = measure([p.pid for p in procs], args.seconds)
    rss = sum(peak_rss_bytes(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(timeout=30)
    return cpu, rss, dir_bytes(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,8")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--bitrate", type=int, default=4_000_000)
    parser.add_argument("--core", type=int, default=1, help="core both recorders are pinned to")
    parser.add_argument("--camera-core", type=int, default=0)
    parser.add_argument("--hearth", default="target/release/hearth")
    args = parser.parse_args()
    hearth = os.path.abspath(args.hearth)
    workdir = tempfile.mkdtemp(prefix="hearth-bench-")
    camera, url = start_demo_camera(hearth, args, workdir)
    rows = []
    try:
        for n in [int(x) for x in args.streams.split(",")]:
            h_cpu, h_rss, h_bytes = run_hearth(hearth, url, n, args, workdir)
            f_cpu, f_rss, f_bytes = run_ffmpeg(url, n, args, workdir)
            minutes = n * args.seconds / 60
            rows.append((n, h_cpu / minutes, f_cpu / minutes, h_rss, f_rss, h_bytes / n, f_bytes / n))
    finally:
        camera.terminate()
        camera.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    mib = 1024 * 1024
    print(f"\nRecording {args.width}x{args.height} H.264 at {args.bitrate / 1e6:.1f} Mbit/s per stream, "
          f"{args.seconds} s measured, both pinned to core {args.core}\n")
    print("| streams | hearth CPU s/stream-min | ffmpeg CPU s/stream-min | CPU ratio | hearth peak RSS | ffmpeg RSS (sum) | RSS ratio | bytes/stream hearth | ffmpeg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, hc, fc, hr, fr, hb, fb in rows:
        print(f"| {n} | {hc:.3f} | {fc:.3f} | {hc / fc if fc else float('nan'):.2f} | {hr / mib:.1f} MiB | "
              f"{fr / mib:.1f} MiB | {hr / fr if fr else float('nan'):.2f} | {hb / 1e6:.1f} MB | {fb / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
