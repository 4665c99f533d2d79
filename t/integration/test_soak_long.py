"""Long mode only (VT_LONG=1): the soak of t/soak/soak.py under pytest.

Ten minutes (VT_SOAK_SECONDS to change it) of offloaded requests that
complete alternating with requests whose client goes away while the fiber
sleeps, waits on a backend, streams, reads a body or long-polls; fails if
a completed request failed, the child crashed or changed, the child's RSS
grows faster than 512 KiB/min under load, or its file descriptors do not
come back to where they started. Not run in CI: too long.
"""

import os
import sys

import pytest

from conftest import module_paths

LONG = os.environ.get("VT_LONG") == "1"


@pytest.mark.skipif(not LONG, reason="long mode only: set VT_LONG=1 (runs "
                    "t/soak/soak.py for VT_SOAK_SECONDS, default 600 s)")
def test_soak_completed_and_aborted_requests():
    module_paths()          # skip or fail as the other tests do
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "soak"))
    import soak             # noqa: E402
    seconds = os.environ.get("VT_SOAK_SECONDS", "600")
    assert soak.main(["--duration", seconds]) == 0
