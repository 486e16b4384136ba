#!/usr/bin/python3
"""Test RTSP camera for hearth's integration tests.

A real third-party RTSP server (GStreamer's gst-rtsp-server) serving a live,
moving test pattern, so hearth's recorder can be exercised end to end.

Run with Debian's interpreter (it has the gi bindings):

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 [--path /cam]
        [--width 640 --height 360 --fps 25 --bitrate-kbps 1000 --keyint 50]
        [--audio] [--h265] [--user U --password PW [--auth-method basic|digest|both]]
        [--no-overlay] [--exit-on-stdin-eof]
        [--scene motion|ramp --scene-log FILE]

Binds 127.0.0.1 only. Once listening it prints exactly one line
``READY rtsp://127.0.0.1:PORT/path`` to stdout (``--port 0`` picks a free port
and the line tells which). Exits cleanly (status 0) on SIGTERM/SIGINT, and on
EOF of stdin with --exit-on-stdin-eof (so it dies with the test that spawned
it). Everything else, errors included, goes to stderr.

Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad (x265enc, voaacenc)
gstreamer1.0-plugins-ugly (x264enc) gstreamer1.0-libav (avenc_aac);
optional gstreamer1.0-x (clockoverlay/timeoverlay: burnt-in clock).
"""

import argparse
import os
import signal
import sys
import time

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402
except (ImportError, ValueError) as e:  # pragma: no cover
    sys.stderr.write(
        "rtsp_server.py: GStreamer RTSP server bindings missing (%s); "
        "run `make deps` (needs python3-gi gir1.2-gst-rtsp-server-1.0) and use "
        "/usr/bin/python3, not a pyenv/venv python\n" % e
    )
    sys.exit(2)

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("rtsp_server.py [%7.3fs]: %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


def have(name):
    return Gst.ElementFactory.find(name) is not None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0 = any free)")
    p.add_argument("--path", default="/cam", help="mount path (default /cam)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate-kbps", type=int, default=1000)
    p.add_argument("--keyint", type=int, default=50, help="max frames between keyframes")
    p.add_argument("--pattern", default="ball",
                   help="videotestsrc pattern (ball: mostly static, low bitrate; snow: noise, fills --bitrate-kbps)")
    p.add_argument("--audio", action="store_true", help="add an AAC (MPEG4-GENERIC) sine track")
    p.add_argument("--h265", action="store_true", help="H.265 (x265enc) instead of H.264")
    p.add_argument("--user", help="require RTSP auth (basic or digest) with this user")
    p.add_argument("--password", help="password for --user")
    p.add_argument(
        "--auth-method",
        choices=("basic", "digest", "both"),
        default="both",
        help="schemes offered in the 401 (default both: Basic and Digest)",
    )
    p.add_argument("--no-overlay", action="store_true", help="skip the clock/time overlay")
    p.add_argument(
        "--scene",
        choices=("motion", "ramp"),
        help="a scripted scene for motion tests instead of --pattern: a static picture, then "
        "(motion) a white box crossing it, or (ramp) the picture slowly darkening; timed from "
        "when a client first plays",
    )
    p.add_argument("--scene-log", help="append `<what> <unix µs>` lines for the scene's transitions")
    p.add_argument("--scene-start", type=float, default=4.0, help="seconds of static scene first")
    p.add_argument("--box-y", type=float, default=0.6, help="vertical position of the box (fraction)")
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin reaches EOF (the spawning process died)",
    )
    a = p.parse_args(argv)
    if not a.path.startswith("/"):
        a.path = "/" + a.path
    if (a.user is None) != (a.password is None):
        p.error("--user and --password go together")
    for name in ("width", "height", "fps", "bitrate_kbps", "keyint"):
        if getattr(a, name) <= 0:
            p.error("--%s must be positive" % name.replace("_", "-"))
    if not 0 <= a.port <= 65535:
        p.error("--port out of range")
    return a


BOX = 64  # the moving object's size in pixels
CROSSING_SECONDS = 3.0
RAMP_SECONDS = 8.0
RAMP_DEPTH = -0.35  # videobalance brightness at the end of the ramp


def scene_source(a, raw):
    """A static picture (colour bars: sharp edges and flat areas) composited with a checkered box
    (kept off-frame until it moves, linked by `box_branch`), through videobalance for
    brightness."""
    return [
        "videotestsrc is-live=true pattern=smpte100",
        raw,
        "compositor name=mix sink_1::xpos=%d sink_1::ypos=%d sink_1::zorder=2"
        % (-2 * BOX, int(a.height * a.box_y)),
        raw,
        "videobalance name=balance",
    ]


def box_branch(a):
    """The moving object: a black-and-white checkered square (visible on every bar) into the
    compositor's second pad."""
    return " videotestsrc is-live=true pattern=checkers-8 ! video/x-raw,width=%d,height=%d,framerate=%d/1 ! mix." % (
        BOX, BOX, a.fps)


def video_branch(a):
    raw = "video/x-raw,width=%d,height=%d,framerate=%d/1" % (a.width, a.height, a.fps)
    if a.scene:
        parts = scene_source(a, raw)
    else:
        parts = [f"videotestsrc is-live=true pattern={a.pattern}", raw]
    if not a.no_overlay and not a.scene:
        # clockoverlay/timeoverlay live in Debian's gstreamer1.0-x (pango plugin).
        if have("clockoverlay") and have("timeoverlay"):
            parts.append(
                'clockoverlay halignment=left valignment=top time-format="%Y-%m-%d %H:%M:%S" '
                "font-desc=\"Sans 14\""
            )
            parts.append('timeoverlay halignment=right valignment=top font-desc="Sans 14"')
        else:
            log("clockoverlay/timeoverlay not available (Debian: gstreamer1.0-x); no overlay")
    parts += ["videoconvert", "video/x-raw,format=I420"]
    if a.h265:
        for el in ("x265enc", "h265parse", "rtph265pay"):
            if not have(el):
                raise SystemExit("rtsp_server.py: --h265 needs GStreamer element %s" % el)
        parts += [
            "x265enc speed-preset=veryfast tune=zerolatency key-int-max=%d bitrate=%d "
            'option-string="bframes=0:repeat-headers=1"' % (a.keyint, a.bitrate_kbps),
            "video/x-h265,profile=main",
            "h265parse config-interval=-1",
            "rtph265pay name=pay0 pt=96",
        ]
    else:
        for el in ("x264enc", "h264parse", "rtph264pay"):
            if not have(el):
                raise SystemExit("rtsp_server.py: GStreamer element %s missing (run `make deps`)" % el)
        # veryfast (not ultrafast, which forces Baseline); the capsfilter makes
        # x264enc negotiate High profile.
        parts += [
            "x264enc speed-preset=veryfast tune=zerolatency key-int-max=%d bframes=0 bitrate=%d"
            % (a.keyint, a.bitrate_kbps),
            "video/x-h264,profile=high",
            "h264parse config-interval=-1",
            "rtph264pay name=pay0 pt=96",
        ]
    return " ! ".join(parts) + (box_branch(a) if a.scene else "")


def audio_branch():
    enc = next((e for e in ("avenc_aac", "voaacenc", "fdkaacenc") if have(e)), None)
    if enc is None:
        raise SystemExit(
            "rtsp_server.py: --audio needs an AAC encoder (avenc_aac from gstreamer1.0-libav, "
            "or voaacenc from gstreamer1.0-plugins-bad)"
        )
    if not have("rtpmp4gpay"):
        raise SystemExit("rtsp_server.py: --audio needs rtpmp4gpay (gstreamer1.0-plugins-good)")
    return " ! ".join(
        [
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.3",
            "audioconvert",
            "audioresample",
            "audio/x-raw,rate=48000,channels=1",
            "%s bitrate=64000" % enc,
            "aacparse",
            "rtpmp4gpay name=pay1 pt=97",
        ]
    )


def build_launch(a):
    s = video_branch(a)
    if a.audio:
        s += " " + audio_branch()
    return "( " + s + " )"


def note(a, what):
    """Records a scene transition with the wall-clock time, for the test to compare."""
    line = "%s %d\n" % (what, int(time.time() * 1e6))
    log("scene: " + line.strip())
    if a.scene_log:
        with open(a.scene_log, "a") as f:
            f.write(line)


def run_scene(a, media):
    pipeline = media.get_element()
    mix = pipeline.get_by_name("mix")
    balance = pipeline.get_by_name("balance")
    box = mix.get_static_pad("sink_1") if mix is not None else None
    if box is None or balance is None:
        log("scene elements missing; no scene")
        return
    started = time.monotonic()
    state = {"phase": "static"}
    note(a, "static")

    def tick():
        t = time.monotonic() - started - a.scene_start
        if a.scene == "motion":
            if t < 0:
                return GLib.SOURCE_CONTINUE
            x = int(-BOX + (a.width + BOX) * t / CROSSING_SECONDS)
            if state["phase"] == "static" and x > -BOX:
                state["phase"] = "moving"
                note(a, "moving")
            if x >= a.width:
                box.set_property("xpos", -2 * BOX)
                note(a, "gone")
                return GLib.SOURCE_REMOVE
            box.set_property("xpos", x)
        else:
            if t < 0:
                return GLib.SOURCE_CONTINUE
            if state["phase"] == "static":
                state["phase"] = "ramp"
                note(a, "ramp_start")
            balance.set_property("brightness", RAMP_DEPTH * min(t / RAMP_SECONDS, 1.0))
            if t >= RAMP_SECONDS:
                note(a, "ramp_end")
                return GLib.SOURCE_REMOVE
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add(20, tick)


def on_media_configure(_factory, media, a):
    log("media configured (pipeline created)")
    if a.scene:
        # The first client's DESCRIBE creates the media; its PLAY follows within
        # milliseconds, so the script's clock starts here.
        run_scene(a, media)
    bus = media.get_element().get_bus()
    if bus is None:
        return

    def on_msg(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            log("pipeline ERROR from %s: %s (%s)" % (msg.src.get_name(), err.message, dbg))
        elif msg.type == Gst.MessageType.WARNING:
            err, dbg = msg.parse_warning()
            log("pipeline warning from %s: %s (%s)" % (msg.src.get_name(), err.message, dbg))

    # The media owns the bus watch; sync messages let us log alongside it.
    bus.enable_sync_message_emission()
    bus.connect("sync-message", on_msg)


def set_auth_methods(auth, method):
    """Select the offered auth schemes. "both" (BASIC|DIGEST, two WWW-Authenticate
    headers, as many cameras send) is a flags value that PyGObject refuses for
    this enum type, so it goes through ctypes; falls back to digest."""
    if method == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        return
    if method == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        return
    try:
        import ctypes

        lib = ctypes.CDLL("libgstrtspserver-1.0.so.0")
        get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
        get_ptr.restype = ctypes.c_void_p
        get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
        fn = lib.gst_rtsp_auth_set_supported_methods
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
        fn.restype = None
        fn(get_ptr(auth.__gpointer__, None),
           int(GstRtsp.RTSPAuthMethod.BASIC) | int(GstRtsp.RTSPAuthMethod.DIGEST))
    except Exception as e:  # pragma: no cover
        log("cannot offer basic+digest together (%s); offering digest only" % e)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)


def setup_auth(server, factory, a):
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
    auth.add_digest(a.user, a.password, token)
    set_auth_methods(auth, a.auth_method)
    server.set_auth(auth)
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )


def main(argv):
    a = parse_args(argv)
    Gst.init(None)

    try:
        launch = build_launch(a)
    except SystemExit as e:
        log(str(e))
        return 2
    log("launch: %s" % launch)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    # Without this a client's PLAY (ffmpeg/retina send Range: npt=0-) makes the
    # server flush-seek the shared live pipeline back to 0, so every other
    # client sees its timestamps jump backwards. CLOCK_AND_OFFSET makes
    # gst-rtsp-server treat the media as not seekable (SDP then carries
    # a=ts-refclk:local / a=mediaclk:sender, which clients ignore).
    factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
    factory.connect("media-configure", on_media_configure, a)
    if a.user is not None:
        setup_auth(server, factory, a)
    server.get_mount_points().add_factory(a.path, factory)

    def on_client(_server, client):
        conn = client.get_connection()
        ip = conn.get_ip() if conn is not None else "?"
        log("client connected from %s" % ip)
        client.connect("closed", lambda _c: log("client from %s closed" % ip))

    server.connect("client-connected", on_client)

    loop = GLib.MainLoop()
    try:
        # attach() creates, binds (SO_REUSEADDR: g_socket_bind allow_reuse=TRUE)
        # and listens; it returns 0 on failure.
        source_id = server.attach(None)
    except GLib.Error as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (a.port, e.message))
        return 1
    if source_id == 0:
        log("cannot listen on 127.0.0.1:%d (port in use?)" % a.port)
        return 1
    port = server.get_bound_port()

    def quit_(signame):
        log("%s: shutting down" % signame)
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_, "SIGINT")
    if a.exit_on_stdin_eof:

        def on_stdin(fd, cond):
            data = b""
            if cond & GLib.IOCondition.IN:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
            if data:
                return GLib.SOURCE_CONTINUE
            quit_("stdin EOF")
            return GLib.SOURCE_REMOVE

        GLib.unix_fd_add_full(
            GLib.PRIORITY_DEFAULT,
            sys.stdin.fileno(),
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            on_stdin,
        )

    url = "rtsp://127.0.0.1:%d%s" % (port, a.path)
    log("listening on %s (%s%s%s)" % (
        url, "h265" if a.h265 else "h264", "+aac" if a.audio else "",
        ", auth" if a.user is not None else ""))
    sys.stdout.write("READY %s\n" % url)
    sys.stdout.flush()

    loop.run()
    GLib.source_remove(source_id)
    # Tell connected clients' sessions to go away; the process exit closes sockets.
    server.client_filter(lambda _s, _c: GstRtspServer.RTSPFilterResult.REMOVE)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
