"""netbed_testkit: what the namespace tests, the benchmarks and the VM checks share.

Standard library only (plus netbed_core), so that vm/run.sh can copy it into the VM as it is,
next to netbed_core and netbed_router; tests and benchmarks import it from the installed
distribution.  Nothing here talks to Docker.

Modules:
    namespaces  run a command; enter a network namespace for a block (sockets, sysctls)
    topology    the client - router - server topology in three namespaces, built and removed
    traffic     numbered UDP and ICMP echo flows with kernel receive timestamps
    binomial    confidence intervals for rates (re-exported by netbed.stats)
"""
