"""netbed_core: what the harness, the router and the VM checks share. Standard library only.

One copy, installed the same way everywhere: the harness imports it from the installed
distribution, the router image and the VM copy this folder as it is. A unit test
(tests/unit/test_core_stdlib.py) imports it alone and checks that it loads nothing outside
the standard library.

Modules:
    netem       the netem model, parser, renderer and lint
    directions  the names of the router's two directions
    subnets     the default testbed's subnets and addresses
    verdicts    the netfilter verdicts the engine hands the kernel
    direction_stats  what an impairment backend counted per direction (None: not measured)
    pcapng      classic pcap in, pcapng out and in (the router's captures)
    packet_key  the key joining the engine's decision log to a capture
"""
