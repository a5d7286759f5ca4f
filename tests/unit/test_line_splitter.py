"""LineSplitter yields the same lines whatever chunks the bytes arrive in."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sidecar.host.stdio import LineSplitter, Oversize

lines = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20)


def split_all(data: bytes, cuts: list[int], max_line: int = 1024) -> list[bytes | Oversize]:
    splitter = LineSplitter(max_line)
    out: list[bytes | Oversize] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out += splitter.feed(data[start:end])
    return out + splitter.finish()


@given(lines, st.lists(st.integers(min_value=0), max_size=10))
def test_any_chunking_gives_the_same_lines(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(p + b"\n" for p in parts)
    expected = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    assert split_all(data, cuts) == expected


def test_crlf_is_tolerated() -> None:
    assert split_all(b'{"a":1}\r\n{"b":2}\r\n', [3, 9]) == [b'{"a":1}', b'{"b":2}']


def test_last_line_without_newline_counts_at_eof() -> None:
    assert split_all(b"one\ntwo", [5]) == [b"one", b"two"]


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_oversize_line_is_reported_once_and_the_next_line_survives(cuts: list[int]) -> None:
    data = b"x" * 50 + b"\nok\n"
    assert split_all(data, cuts, max_line=10) == [Oversize(50), b"ok"]


def test_line_exactly_at_the_limit_is_kept() -> None:
    assert split_all(b"x" * 10 + b"\n", [], max_line=10) == [b"x" * 10]
