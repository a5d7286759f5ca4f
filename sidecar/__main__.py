"""Command line: `mobile-worship-sidecar [schema|openrpc] [--log-level L] [--log-format F]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sidecar import __version__
from sidecar.host.logs import LEVELS, setup_logging

USAGE_EPILOG = """\
commands:
  run       (default) serve JSON-RPC 2.0 on stdin/stdout, one message per line
  schema    print the JSON Schema of every message type
  openrpc   print the OpenRPC document of the stdio API

example:
  echo '{"jsonrpc":"2.0","method":"get_leader_status","id":1}' | mobile-worship-sidecar
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mobile-worship-sidecar",
        description="Peer layer of the worship app: mDNS discovery, leader election and "
        "WebRTC data channels, driven by JSON-RPC 2.0 over stdio. Logs go to stderr.",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="run", choices=("run", "schema", "openrpc"))
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def _utf8_stdio() -> None:
    """UTF-8 text on stdout and stderr everywhere: frozen binaries on Windows
    otherwise use the legacy code page for pipes. (The protocol itself is
    written as UTF-8 bytes straight to the file descriptor, unbuffered.)"""
    for stream, errors in ((sys.stdout, "strict"), (sys.stderr, "backslashreplace")):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors=errors, line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    _utf8_stdio()
    args = parse_args(argv)
    if args.command in ("schema", "openrpc"):
        from sidecar.host.schema import json_schema, openrpc_document, to_json

        document = json_schema() if args.command == "schema" else openrpc_document()
        sys.stdout.write(to_json(document))
        return 0
    listener = setup_logging(args.log_level, args.log_format)
    try:
        from sidecar.host.app import serve

        return asyncio.run(serve())
    finally:
        listener.stop()


if __name__ == "__main__":
    sys.exit(main())
