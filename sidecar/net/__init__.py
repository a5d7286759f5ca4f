"""The adapters: the cores' decisions carried out with real I/O.

zeroconf for mDNS (`discovery`), the kernel's interfaces (`netifs`), aiohttp
for the signaling WebSocket (`signaling/`: the server every peer binds, the
follower's client, rendezvous queries, pairing, the display page), aiortc for
the data channels (`transport`, the `link` shell over `sidecar.core.link`,
`channels`). Only this folder (and `sidecar.compat`, the door to third-party
internals) imports asyncio's network stack, aiohttp, zeroconf or aiortc.
"""
