"""One running node: the cores and the adapters wired together, from
start_peer to stop_peer.

`membership.Membership` is this device's place in the room (network view,
election, discovery, signaling); `keys.RoomKeys` the room key it holds;
`node.Node` joins the membership to the data channels and the retained state,
and turns what happens into notifications for the host.
"""
