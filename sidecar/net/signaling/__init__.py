"""WebSocket signaling of the leader-elected room (docs/protocol.md, "Signaling").

Four layers, kept apart the h11 way, each its own module:

- `protocol`: the frames' encoding, the close codes, the limits.
- `registry`: `RoomRegistry`, the rules, sans I/O. Fed with events and `now`
  (seconds from an injected clock), it returns actions (`Send`, `Close`,
  `Deliver`, `MembersChanged`) and never touches a socket or the event loop.
- `server`: `SignalingServer`, the aiohttp adapter. Every peer binds it at
  start so its port is known and advertised; it accepts registrations only
  while leading.
- `client`: `SignalingClient`, what a follower uses to join the leader,
  heartbeat it and notice its loss.

The room key's proofs are in `sidecar.core.roomkey`. Importing this package, its
`protocol` or its `registry` loads no network library.
"""
