"""Graphics settings that the kiosk, counter and display windows share.

On a 2-core machine without a GPU, where Mesa renders with llvmpipe, the hall
display at 1920x1080 showing calls used 538 MB and 2.2 cores with Kivy's and
Mesa's defaults. With these settings it used 216 MB and 0.9 cores (measured
as docs/benchmarks.md describes).
"""

from __future__ import annotations

import os


def configure_rendering() -> None:
    """Turn off multisampling and llvmpipe's render threads; call it before the
    Window exists, because both are read when the GL context is made.

    Multisampling only smooths the edges of drawn shapes (text is smoothed by
    the font renderer), and at 1920x1080 its buffers take 55 to 85 MB. Each of
    llvmpipe's render threads keeps its own tiles, so with the default one per
    core the display doubles its memory as soon as a call animates. The
    variable affects only llvmpipe, and a value set by the user is kept.
    """
    os.environ.setdefault("LP_NUM_THREADS", "0")
    from kivy.config import Config

    Config.set("graphics", "multisamples", "0")
