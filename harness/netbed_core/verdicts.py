"""Netfilter verdicts (linux/netfilter.h) that the userspace engine returns per packet."""

from __future__ import annotations

NF_DROP = 0
NF_ACCEPT = 1
