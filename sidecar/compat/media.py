"""No media side: stand-ins for the names aiortc imports from PyAV and from its
own audio and video codecs, so that a data-channel peer loads neither.

`import aiortc` imports PyAV (`av`, and FFmpeg's libraries with it) and every
codec aiortc has (opus, G.711, G.722, H.264, VP8), although a peer that only
opens data channels never encodes or decodes a frame. Measured on this
project's frozen build (BENCHMARKS.md, "A lean sidecar"): PyAV and its FFmpeg
libraries were 103 MB of the 180 MB bundle, and their import kept a joiner's
first channel waiting ~0.4 s after it had joined the room.

`install()` puts a finder first on `sys.meta_path` that answers exactly the
modules of `STAND_INS` with small stand-ins: the PyAV names the remaining
aiortc modules import (frame and packet types, used in annotations and
`isinstance` checks, and `FFmpegError` in one `except` clause), and the codec
modules' encoder, decoder and depayloader names. Any use of them raises
`MediaUnavailable`; a submodule of `av` that is not listed is not found at all.
`MW_AIORTC_MEDIA=1` in the environment leaves aiortc as it comes (for the benches'
comparison; a frozen build does not contain PyAV).
What aiortc keeps loading is its protocol side (ICE, DTLS, SCTP, and the RTP
sender and receiver classes that `RTCPeerConnection` imports but a data-only
connection never creates).

Guarded by tests/unit/test_media_stand_in.py, which reads the installed
aiortc's sources and fails when it imports a name or a module this table lacks,
and by tests/e2e/test_lean.py, which checks that real peers that connect and
exchange messages have no PyAV or FFmpeg library mapped. aiortc is pinned
(pyproject.toml, `sidecar.compat.TESTED`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

from sidecar.compat.standins import MARK, Make, StandIns

Kind = Literal["class", "error", "function"]

STAND_INS: dict[str, dict[str, Kind]] = {
    # PyAV, as imported by aiortc's mediastreams, rtp, rtcrtpsender, rtcrtpreceiver
    # and codecs.base (the modules RTCPeerConnection needs)
    "av": {"AudioFrame": "class", "VideoFrame": "class", "FFmpegError": "error"},
    "av.frame": {"Frame": "class"},
    "av.packet": {"Packet": "class"},
    # aiortc's codecs, as imported by aiortc.codecs (its registry of codec parameters)
    "aiortc.codecs.g711": {
        "PcmaDecoder": "class",
        "PcmaEncoder": "class",
        "PcmuDecoder": "class",
        "PcmuEncoder": "class",
    },
    "aiortc.codecs.g722": {"G722Decoder": "class", "G722Encoder": "class"},
    "aiortc.codecs.h264": {
        "H264Decoder": "class",
        "H264Encoder": "class",
        "h264_depayload": "function",
    },
    "aiortc.codecs.opus": {"OpusDecoder": "class", "OpusEncoder": "class"},
    "aiortc.codecs.vpx": {
        "Vp8Decoder": "class",
        "Vp8Encoder": "class",
        "vp8_depayload": "function",
    },
}

__all__ = ["MARK", "STAND_INS", "MediaUnavailable", "active", "install"]


class MediaUnavailable(RuntimeError):
    """Audio or video was asked of a peer that carries data channels only."""


def _refuse(what: str) -> MediaUnavailable:
    return MediaUnavailable(f"{what}: this peer carries data channels only (no audio or video)")


def _make(kind: Kind) -> Make:
    def make(module: str, name: str) -> Any:
        what = f"{module}.{name}"
        if kind == "error":
            return type(name, (Exception,), {"__module__": module})
        if kind == "function":

            def refuse(*_args: Any, **_kwargs: Any) -> Any:
                raise _refuse(what)

            refuse.__name__ = refuse.__qualname__ = name
            refuse.__module__ = module
            return refuse

        def init(self: Any, *_args: Any, **_kwargs: Any) -> None:
            raise _refuse(what)

        return type(name, (), {"__module__": module, "__init__": init})

    return make


_FINDER = StandIns(
    {
        module: {name: _make(kind) for name, kind in names.items()}
        for module, names in STAND_INS.items()
    },
    packages=frozenset({"av"}),
)


def install() -> bool:
    """Serve the stand-ins from now on; call it before aiortc is imported. False
    when it is too late (the real PyAV or aiortc's codecs are loaded already, as in
    a test process that imported them itself): then nothing changes."""
    if os.environ.get("MW_AIORTC_MEDIA") == "1":  # benches: aiortc as it comes
        return False
    if _FINDER in sys.meta_path:
        return True
    if _FINDER.real_ones_loaded():
        return False
    sys.meta_path.insert(0, _FINDER)
    return True


def active() -> bool:
    """Whether aiortc runs on the stand-ins (the media side is not loaded)."""
    return all(getattr(sys.modules.get(name), MARK, True) for name in STAND_INS)
