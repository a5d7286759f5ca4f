"""The mDNS TXT codec: what a peer announces, and what a peer accepts (no sockets)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.contract import PROTOCOL_VERSION, ROOM_MAX_BYTES, PeerRecord
from sidecar.core.priority import priority_of
from sidecar.core.txt import FRESH_S, TXT_ENTRY_MAX, decode_txt, encode_txt, parse_txt

CONTROLLER = PeerRecord(
    peer_id="0f8b7c2e-1111-4222-8333-944455556666",
    name="Booth",
    peer_type="controller",
    display_class=None,
    started_at=1_732_600_000_000,
    role="candidate",
    leader_id=None,
    term=0,
    room="sanctuary",
    addresses=("10.77.0.1",),
    port=3010,
)
DISPLAY = PeerRecord(
    peer_id="7a1d0c9e-aaaa-4bbb-8ccc-0123456789ab",
    name="Stage monitor ✝",
    peer_type="display",
    display_class="stage",
    started_at=1_732_600_000_123,
    role="follower",
    leader_id=CONTROLLER.peer_id,
    term=7,
    room="sanctuary",
    addresses=("10.77.0.2", "192.168.1.20"),
    port=0,
)


def props(record: PeerRecord = DISPLAY, /, **changes: bytes | None) -> dict[bytes, bytes | None]:
    """The TXT properties of `record` as they come off the wire, with some values
    replaced (keyword `peer_type` is key `peer-type`)."""
    raw: dict[bytes, bytes | None] = {k.encode(): v.encode() for k, v in encode_txt(record).items()}
    for key, value in changes.items():
        raw[key.replace("_", "-").encode()] = value
    return raw


def drop(key: str, record: PeerRecord = DISPLAY) -> dict[bytes, bytes | None]:
    raw = props(record)
    del raw[key.encode()]
    return raw


def decode(raw: dict[bytes, bytes | None], record: PeerRecord = DISPLAY) -> PeerRecord | None:
    return decode_txt(raw, list(record.addresses), record.port)


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("record", [CONTROLLER, DISPLAY], ids=["controller", "display"])
def test_round_trip(record: PeerRecord) -> None:
    assert decode(props(record), record) == record


def test_the_txt_keys_of_the_design() -> None:
    txt = encode_txt(CONTROLLER)
    assert txt == {
        "v": str(PROTOCOL_VERSION),
        "id": CONTROLLER.peer_id,
        "name": "Booth",
        "peer-type": "controller",
        "display-class": "",
        "started": "1732600000000",
        "priority": priority_of(CONTROLLER).encode(),
        "role": "candidate",
        "leader-id": "",
        "term": "0",
        "room": "sanctuary",
    }
    assert encode_txt(DISPLAY)["leader-id"] == CONTROLLER.peer_id
    assert encode_txt(DISPLAY)["display-class"] == "stage"


def test_a_round_trip_through_raw_txt_rdata() -> None:
    entries = [f"{k}={v}".encode() for k, v in encode_txt(DISPLAY).items()]
    rdata = b"".join(bytes([len(e)]) + e for e in entries)
    assert decode(parse_txt(rdata)) == DISPLAY


def test_parse_txt_follows_rfc_6763() -> None:
    rdata = b"".join(
        bytes([len(e)]) + e for e in [b"Role=leader", b"role=follower", b"flag", b"empty=", b""]
    )
    assert parse_txt(rdata) == {b"role": b"leader", b"flag": None, b"empty": b""}
    assert parse_txt(b"\x09id=abc") == {b"id": b"abc"}  # a truncated last entry is cut short


def test_a_long_name_is_cut_to_fit_one_txt_string() -> None:
    record = msgspec.structs.replace(DISPLAY, name="✝" * 64)  # 192 bytes: fits
    assert decode(props(record)) == record
    record = msgspec.structs.replace(DISPLAY, name="𝄞" * 64)  # 256 bytes: does not
    txt = encode_txt(record)
    assert len(b"name=" + txt["name"].encode()) <= TXT_ENTRY_MAX
    assert txt["name"] == "𝄞" * 62
    decoded = decode(props(record))
    assert decoded is not None and decoded.name == "𝄞" * 62


def test_a_room_that_cannot_fit_is_refused_at_encoding() -> None:
    record = msgspec.structs.replace(DISPLAY, room="𝄞" * 64)
    with pytest.raises(ValueError, match="room"):
        encode_txt(record)


def test_the_longest_room_start_peer_accepts_fits() -> None:
    room = "𝄞" * 62 + "ab"  # ROOM_MAX_BYTES: start_peer refuses anything longer
    assert len(room.encode()) == ROOM_MAX_BYTES
    record = msgspec.structs.replace(DISPLAY, room=room)
    assert decode(props(record)) == record


@pytest.mark.parametrize(
    "changes",
    [
        {"peer_type": "display", "display_class": None},
        {"peer_type": "controller", "display_class": "stage"},
        {"name": "two\nlines"},
        {"name": ""},
        {"peer_id": "x" * 65},
    ],
)
def test_a_record_the_others_would_reject_is_refused_at_encoding(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode_txt(msgspec.structs.replace(DISPLAY, **changes))


# --------------------------------------------------------------- rejected input

REQUIRED = [
    "v",
    "id",
    "name",
    "peer-type",
    "display-class",
    "started",
    "priority",
    "role",
    "leader-id",
    "term",
    "room",
]


@pytest.mark.parametrize("key", REQUIRED)
def test_a_missing_key_is_rejected(key: str) -> None:
    assert decode(drop(key)) is None


@pytest.mark.parametrize("key", REQUIRED)
def test_a_key_without_a_value_is_rejected(key: str) -> None:
    raw = props()
    raw[key.encode()] = None
    assert decode(raw) is None


BAD_UINTS = [b"", b"-1", b"+1", b"1.5", b"1e3", b"abc", b" 12", b"12 ", b"012", b"1_000",
             b"\xef\xbc\x91\xef\xbc\x92", b"1" * 17]  # fmt: skip


@pytest.mark.parametrize("value", BAD_UINTS)
@pytest.mark.parametrize("key", ["started", "term", "v"])
def test_a_bad_integer_is_rejected(key: str, value: bytes) -> None:
    assert decode(props(**{key: value})) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"peer_type": b"projector"},
        {"peer_type": b"Display"},
        {"role": b"boss"},
        {"role": b""},
        {"display_class": b"foyer"},
    ],
    ids=repr,
)
def test_an_unknown_literal_is_rejected(changes: dict[str, bytes]) -> None:
    assert decode(props(**changes)) is None


def test_display_class_must_match_the_peer_type() -> None:
    assert decode(props(display_class=b"")) is None  # a display without one
    assert decode(props(CONTROLLER, display_class=b"stage"), CONTROLLER) is None


@pytest.mark.parametrize(
    "priority",
    [
        b"",
        b"garbage",
        b"0:1732600000123:7a1d0c9e-aaaa-4bbb-8ccc-0123456789ab",  # claims controller
        b"1:1732600000000:7a1d0c9e-aaaa-4bbb-8ccc-0123456789ab",  # another start
        b"1:1732600000123:00000000-0000-0000-0000-000000000000",  # another id
        b"1:01732600000123:7a1d0c9e-aaaa-4bbb-8ccc-0123456789ab",  # not canonical
    ],
)
def test_a_priority_that_disagrees_is_rejected(priority: bytes) -> None:
    assert decode(props(priority=priority)) is None


@pytest.mark.parametrize("key", ["name", "id", "room", "role", "leader-id"])
def test_non_utf8_is_rejected(key: str) -> None:
    assert decode(props(**{key: b"caf\xe9"})) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "n" * 65),
        ("id", "i" * 65),
        ("room", "r" * 65),
        ("leader-id", "l" * 65),
        ("name", "n" * 300),
    ],
)
def test_too_long_values_are_rejected(key: str, value: str) -> None:
    assert decode(props(**{key: value.encode()})) is None


@pytest.mark.parametrize("key", ["name", "id", "room"])
def test_empty_values_are_rejected(key: str) -> None:
    assert decode(props(**{key: b""})) is None


def test_control_characters_in_the_name_are_rejected() -> None:
    assert decode(props(name=b"Stage\x1b[2J")) is None


@pytest.mark.parametrize("v", [PROTOCOL_VERSION + 1, 0, 99])
def test_a_foreign_protocol_version_is_rejected(v: int) -> None:
    assert decode(props(v=str(v).encode())) is None


@pytest.mark.parametrize(
    ("addresses", "port"),
    [(["999.1.1.1"], 3010), (["::1"], 3010), (["host.local"], 3010), (["10.0.0.1"], -1),
     (["10.0.0.1"], 65536)],
)  # fmt: skip
def test_bad_addresses_or_port_are_rejected(addresses: list[str], port: int) -> None:
    assert decode_txt(props(), addresses, port) is None


def test_unknown_keys_are_ignored() -> None:
    raw = props()
    raw[b"future-key"] = b"whatever"
    raw[b"flag"] = None
    assert decode(raw) == DISPLAY


def test_the_room_is_kept_for_the_caller_to_filter() -> None:
    other = msgspec.structs.replace(DISPLAY, room="chapel")
    decoded = decode(props(other))
    assert decoded is not None and decoded.room == "chapel"


def test_rejection_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="sidecar.net.discovery"):
        assert decode(props(role=b"boss")) is None
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "role" in caplog.records[0].getMessage()


# ---------------------------------------------------------------- never raises

VALID = props()
keys = st.sampled_from(sorted(VALID)) | st.binary(max_size=12)
values = (
    st.none() | st.binary(max_size=300) | st.sampled_from(sorted(v for v in VALID.values() if v))
)


@given(
    st.dictionaries(keys, values, max_size=16),
    st.lists(st.text(max_size=20), max_size=3),
    st.integers(min_value=-(2**70), max_value=2**70),
)
def test_random_properties_never_raise(
    raw: dict[bytes, bytes | None], addresses: list[str], port: int
) -> None:
    result = decode_txt(raw, addresses, port)
    assert result is None or isinstance(result, PeerRecord)


@given(st.dictionaries(st.sampled_from(sorted(VALID)), values, min_size=1, max_size=4))
def test_a_valid_record_with_random_values_never_raises(changes: dict[bytes, bytes | None]) -> None:
    raw = {**VALID, **changes}
    result = decode_txt(raw, ["10.77.0.2"], 3010)
    if result is not None:  # what gets through is announced back exactly as received
        assert encode_txt(result) == {
            k.decode(): v.decode() for k, v in raw.items() if v is not None
        }


@given(st.binary(max_size=600))
def test_random_rdata_never_raises(rdata: bytes) -> None:
    result = decode_txt(parse_txt(rdata), ["10.77.0.2"], 3010)
    assert result is None or isinstance(result, PeerRecord)


def test_a_keyed_room_signs_its_records_and_ignores_unsigned_or_foreign_ones() -> None:
    def raw(txt: dict[str, str]) -> dict[bytes, bytes | None]:
        return {k.encode(): v.encode() for k, v in txt.items()}

    signed = raw(encode_txt(DISPLAY, "psalm-23"))
    addresses, port = list(DISPLAY.addresses), DISPLAY.port
    assert decode_txt(signed, addresses, port, "psalm-23") == DISPLAY
    assert decode_txt(signed, addresses, port, "wrong") is None
    assert decode_txt(signed, addresses, port) is None  # keyless peers keep out too
    assert decode_txt(raw(encode_txt(DISPLAY)), addresses, port, "psalm-23") is None
    tampered = {**signed, b"role": b"leader"}
    assert decode_txt(tampered, addresses, port, "psalm-23") is None


def test_a_keyed_record_is_signed_with_its_addresses_port_and_time() -> None:
    """A device that copies a signed record cannot point it elsewhere, keep it
    alive past its time, or slip an entry into it."""

    def raw(txt: dict[str, str]) -> dict[bytes, bytes | None]:
        return {k.encode(): v.encode() for k, v in txt.items()}

    now = 1_800_000_000_000
    signed = raw(encode_txt(DISPLAY, "psalm-23", now))
    addresses, port = list(DISPLAY.addresses), DISPLAY.port
    assert decode_txt(signed, addresses, port, "psalm-23", now + 5_000) == DISPLAY
    assert decode_txt(signed, ["10.66.6.6"], port, "psalm-23", now) is None  # elsewhere
    assert decode_txt(signed, addresses[:1], port, "psalm-23", now) is None
    assert decode_txt(signed, addresses, 4444, "psalm-23", now) is None
    assert decode_txt(signed, list(reversed(addresses)), port, "psalm-23", now) is not None
    late = now + int(FRESH_S * 1000) + 1
    assert decode_txt(signed, addresses, port, "psalm-23", late) is None  # replayed later
    assert decode_txt(signed, addresses, port, "psalm-23", now - int(FRESH_S * 1000) - 1) is None
    assert decode_txt({**signed, b"flag": None}, addresses, port, "psalm-23", now) is None
    assert (
        decode_txt({**signed, b"ts": str(now + 1).encode()}, addresses, port, "psalm-23", now)
        is None
    )


def test_terms_and_times_beyond_what_javascript_holds_are_rejected() -> None:
    assert decode(props(term=str(2**53).encode())) is None
    assert decode(props(term=str(10**16).encode())) is None
    assert decode(props(term=str(2**53 - 1).encode())) is not None
