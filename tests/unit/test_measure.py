"""netbed.measure on hand-made arrivals: the named fields, and the counts built on them."""

from __future__ import annotations

from netbed.measure import Arrival, arrivals_from, delivery, one_way_delays_ms


def test_rows_from_the_agent_become_named_arrivals() -> None:
    """recv_sequence rows ([seq, send_ns, recv_ns, size, crc_ok(, tos)]) map to the fields in
    that order; a row without TOS has tos None; converting twice changes nothing."""
    rows = [[7, 1_000_000, 3_500_000, 64, True], [8, 2_000_000, 2_250_000, 64, False, 3]]
    arrivals = arrivals_from(rows)
    assert arrivals == [Arrival(seq=7, send_ns=1_000_000, recv_ns=3_500_000, size_bytes=64, crc_ok=True),
                        Arrival(seq=8, send_ns=2_000_000, recv_ns=2_250_000, size_bytes=64, crc_ok=False, tos=3)]
    assert arrivals[0].tos is None and arrivals[1].tos == 3
    assert arrivals_from(arrivals) == arrivals
    assert [a.one_way_ms for a in arrivals] == [2.5, 0.25]
    assert one_way_delays_ms(rows) == one_way_delays_ms(arrivals) == [2.5, 0.25]


def test_delivery_counts_losses_duplicates_reordering_and_checksums() -> None:
    """Sent 0..5: 1 lost, 3 twice, 2 and 3 after 4 (two reordered, RFC 4737), 5 corrupted."""
    rows = [[0, 0, 1, 64, True], [4, 0, 1, 64, True], [2, 0, 1, 64, True], [3, 0, 1, 64, True],
            [3, 0, 1, 64, True], [5, 0, 1, 64, False]]
    d = delivery(rows, 6)
    assert (d.delivered, d.lost, d.duplicates, d.reordered) == (5, 1, 1, 2)
    assert (d.bad_checksum, d.intact, d.lost_seqs) == (1, 4, frozenset({1}))
    assert delivery(arrivals_from(rows), 6) == d
