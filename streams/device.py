"""Live capture sources through PyAV: a camera or capture card (`device:`), or an FFmpeg test pattern (`lavfi:`).

A device delivers frames at its own pace with its own timestamps; media time is the first frame's
presentation time subtracted. A lavfi graph has no pace of its own, so it is played at real-time pace.
"""

from __future__ import annotations

import sys
from typing import Iterator

import av

from cuecast.streams.sources import ThreadedSource
from cuecast.streams.video import analysis_size
from cuecast.types import Frame, SourceError, SourceInfo

CAPTURE_FORMAT = {"linux": "v4l2", "darwin": "avfoundation", "win32": "dshow"}


class DeviceSource(ThreadedSource):
    """device:/dev/video0 (v4l2), device:0 (avfoundation), device:video=Cam (dshow), or lavfi:testsrc=...

    options: FFmpeg input options, e.g. {"framerate": "30", "video_size": "1280x720"}. Always live: the
    capture is read on its own thread and old frames are dropped when the analysis falls behind.
    """

    def __init__(self, target: str, kind: str = "device", analysis_width: int = 320, options: dict | None = None,
                 max_seconds: float | None = None, keep_picture: bool = False, queue_frames: int = 32,
                 name: str | None = None):
        if not target:
            raise SourceError(f"{kind}: needs a device or graph, e.g. device:/dev/video0 or lavfi:testsrc")
        self.target, self.kind = target, kind
        self.fmt = "lavfi" if kind == "lavfi" else CAPTURE_FORMAT.get(sys.platform, "v4l2")
        self.options = dict(options or {})
        self.analysis_width = analysis_width
        self.max_seconds = max_seconds
        self.realtime_pace = kind == "lavfi"
        container = self._open()  # fail now, with a clear message, rather than when the engine starts
        vs = container.streams.video[0]
        self.width, self.height = vs.codec_context.width, vs.codec_context.height
        fps = float(vs.average_rate or vs.guessed_rate or 0)
        self.size = analysis_size(self.width, self.height, analysis_width)
        self.keep_picture = keep_picture
        container.close()
        super().__init__(SourceInfo(kind, name or f"{kind}:{target}", self.width, self.height, fps, live=True),
                         queue_frames)

    def _open(self):
        try:
            container = av.open(self.target, format=self.fmt, options=self.options)
        except (av.error.FFmpegError, OSError) as e:
            what = "capture device" if self.kind == "device" else "lavfi graph"
            raise SourceError(f"cannot open {what} {self.target!r} ({self.fmt}): {e}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.target} has no video stream")
        return container

    def _items(self) -> Iterator[Frame]:
        frames = self._frames()
        return self._paced(frames) if self.realtime_pace else frames

    def _frames(self) -> Iterator[Frame]:
        container = self._open()
        t0 = None
        index = 0
        try:
            for frame in container.decode(video=0):
                if frame.pts is None:
                    continue
                pts = float(frame.pts * frame.time_base)
                if t0 is None:
                    t0 = pts
                t = pts - t0
                if self.max_seconds is not None and t >= self.max_seconds:
                    return
                w, h = self.size
                img = frame.to_ndarray(width=w, height=h, format="rgb24")
                yield Frame(t=t, index=index, image=img, source_size=(self.width, self.height),
                            picture=frame if self.keep_picture else None)
                index += 1
        except av.error.FFmpegError as e:
            raise SourceError(f"{self.target}: capture failed ({e.__class__.__name__})") from None
        finally:
            container.close()
