"""Stand-in modules served from a table: the mechanism behind `media` (for good)
and `jsonrpc` (while one import runs). A finder first on `sys.meta_path` answers
exactly the listed module names, each with the members the table makes; any
other name goes on to the real finders."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

Make = Callable[[str, str], Any]
"""Makes one member: (module name, member name) -> the object."""

MARK = "__mw_stand_in__"
"""Set on every stand-in module (tests tell them from the real ones by it)."""


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, table: Mapping[str, Mapping[str, Make]], packages: frozenset[str]) -> None:
        self.table = table
        self.packages = packages

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.table:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in self.packages)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        for name, make in self.table[module.__name__].items():
            setattr(module, name, make(module.__name__, name))
        setattr(module, MARK, True)

    def real_ones_loaded(self) -> bool:
        """Whether a real module of the table is imported already."""
        return any(
            (loaded := sys.modules.get(name)) is not None and not getattr(loaded, MARK, False)
            for name in self.table
        )

    @contextmanager
    def during(self) -> Iterator[None]:
        """Serve the stand-ins while the block runs, then forget them: later
        imports of those names get the real modules."""
        sys.meta_path.insert(0, self)
        try:
            yield
        finally:
            sys.meta_path.remove(self)
            for name in self.table:
                if getattr(sys.modules.get(name), MARK, False):
                    del sys.modules[name]
                    parent, _, child = name.rpartition(".")
                    if parent in sys.modules and getattr(sys.modules[parent], child, None):
                        delattr(sys.modules[parent], child)


def refusing_class(why: str) -> Make:
    """A class whose instances cannot be made (`why` says what is missing)."""

    def make(module: str, name: str) -> Any:
        def init(self: Any, *_args: Any, **_kwargs: Any) -> None:
            raise RuntimeError(f"{module}.{name}: {why}")

        return type(name, (), {"__module__": module, "__init__": init})

    return make
