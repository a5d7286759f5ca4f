"""Entry point of the frozen sidecar (PyInstaller needs a script, not a module)."""

import sys

from sidecar.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
