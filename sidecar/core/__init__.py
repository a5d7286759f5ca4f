"""The pure rules of the peer layer, sans I/O.

Every protocol rule lives here as a plain class or function fed with events
and a clock (`now`), returning decisions or actions: the election, the
network view, the channel's link core, delivery and flow control, retained
state, rendezvous, the signaling registry and its admission, pairing and the
room key's cryptography. Nothing here opens a socket, starts a task or reads
a clock: modules of this folder import only `sidecar.core`, `sidecar.contract`,
the standard library (no asyncio) and the cryptography packages
(tests/unit/test_layers.py checks it).
"""
