"""The default testbed's addressing (instance index 0). Other instances shift the third octet.

Testbed N uses 10.77.(2N).0/24 on the client side and 10.77.(2N+1).0/24 on the server side,
with the matching fd00:77:0:(2N)::/64 pairs; the router is .2 and the host .10 on each side.
"""

from __future__ import annotations

CLIENT_NET4 = "10.77.0.0/24"
SERVER_NET4 = "10.77.1.0/24"
CLIENT_NET6 = "fd00:77::/64"
SERVER_NET6 = "fd00:77:0:1::/64"

CLIENT4, ROUTER_CLIENT4, ROUTER_SERVER4, SERVER4 = "10.77.0.10", "10.77.0.2", "10.77.1.2", "10.77.1.10"
CLIENT6, ROUTER_CLIENT6, ROUTER_SERVER6, SERVER6 = "fd00:77::10", "fd00:77::2", "fd00:77:0:1::2", "fd00:77:0:1::10"
