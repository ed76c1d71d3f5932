"""An RTSP camera for the tests: Debian's gst-rtsp-server serving a video file over RTSP.

Run it with the system Python, which has PyGObject and the GStreamer typelibs (``make system-deps``
installs them; the project's venv does not need them)::

    /usr/bin/python3 tests/rtsp_camera.py --port 8554 --video clip.avi

It serves ``rtsp://127.0.0.1:PORT/cam``: the file decoded and re-encoded as H.264 (openh264, baseline
profile, a key frame every ``--gop`` frames, SPS/PPS repeated: what an IP camera sends) or as RTP/JPEG
(``--codec jpeg``), paced in real time, to any number of clients from one shared media. When it listens
it prints ``READY <url>`` on stdout. The stream ends at the end of the file.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "videoconvert ! video/x-raw,format=I420 ! openh264enc gop-size={gop} bitrate=1500000 ! h264parse "
            "! rtph264pay name=pay0 pt=96 config-interval=1",
    "jpeg": "videoconvert ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26",
}
#: GStreamer elements the launch line needs (decodebin picks jpegdec for the tests' MJPEG clips).
ELEMENTS = ("filesrc", "decodebin", "jpegdec", "videoconvert", "openh264enc", "h264parse", "rtph264pay", "jpegenc",
            "rtpjpegpay")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--gop", type=int, default=10, help="frames between key frames (H.264)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc location={args.video} ! decodebin ! {ENCODERS[args.codec].format(gop=args.gop)} )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print(f"READY rtsp://127.0.0.1:{args.port}/cam", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
