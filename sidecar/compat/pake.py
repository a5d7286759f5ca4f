"""The `cpace` package's internals (see `sidecar.compat`): a CPace run from a
given scalar, so that test vectors shared with the TypeScript implementation
are deterministic. The sidecar itself only uses `CPace.start`."""

from __future__ import annotations

from collections.abc import Callable

from cpace import CPace, CPaceError, CPaceRole, _calculate_generator, _scalar_mult_vfy


def generator(prs: bytes, ci: bytes, sid: bytes) -> bytes:
    """G = Elligator2(SHA-512(generator string)), the u-coordinate."""
    return _calculate_generator(prs, ci, sid)


def cpace_with_scalar(
    *, role: CPaceRole, prs: bytes, sid: bytes, ci: bytes, scalar: bytes
) -> CPace:
    share = _scalar_mult_vfy(scalar, generator(prs, ci, sid))
    if share is None:
        raise CPaceError("low-order share")
    return CPace(role=role, sid=sid, ad=b"", scalar=scalar, public_share=share)


def with_scalar(scalar: bytes) -> Callable[[CPaceRole, bytes, bytes, bytes], CPace]:
    """A `sidecar.core.pairing.StartCPace` that uses `scalar`."""

    def start(role: CPaceRole, prs: bytes, sid: bytes, ci: bytes) -> CPace:
        return cpace_with_scalar(role=role, prs=prs, sid=sid, ci=ci, scalar=scalar)

    return start
