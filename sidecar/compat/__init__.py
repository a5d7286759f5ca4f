"""The third-party internals the sidecar relies on, each behind one small module.

Public APIs do not cover everything a peer layer needs: aioice gathers on every
interface of the machine, aiortc does not say which candidate pair carries a
connection, zeroconf cannot leave without goodbyes. What we use of their
internals is here and nowhere else, with the versions it was checked against
(`TESTED`); pyproject.toml bounds those dependencies to the same ranges, and
tests/unit/test_compat.py fails when an installed version leaves them.

`zc` imports zeroconf, `rtc` imports aiortc and aioice (after `media` put its
stand-ins for PyAV and aiortc's codecs in place), `jsonrpc` imports jsonrpcserver
(without jsonschema and http.server), `web` imports aiohttp,
`pake` imports cpace (for test vectors only):
import each only where that stack is loaded anyway.
"""

from __future__ import annotations

TESTED: dict[str, tuple[str, str]] = {
    # distribution: (lowest tested, first version not tested)
    "zeroconf": ("0.154", "0.155"),
    "aiortc": ("1.16.0", "1.16.1"),  # exact: media.py mirrors its imports
    "aioice": ("0.13", "0.14"),
    "aiohttp": ("3.14", "3.15"),
    "cpace": ("0.1", "0.2"),
}
