"""bench/equity_book.py: the two books it compares, on rows written by hand."""

import zipfile

import numpy as np

from bench.equity_book import books, measure


def test_carried_and_per_venue_books() -> None:
    # one side per row (0: the side is not on the row), venues 0 and 1
    bid = np.array([10.00, 0, 10.01, 9.99, 0])
    ask = np.array([0, 10.03, 0, 0, 10.02])
    venue = np.array([0, 1, 1, 1, 0])
    b = books(bid, ask, venue, 2)
    carried, per_venue = b[:, :2], b[:, 2:]
    assert np.isnan(carried[0, 1]) and np.isnan(per_venue[0]).all()
    np.testing.assert_allclose(
        carried[1:], [[10.00, 10.03], [10.01, 10.03], [9.99, 10.03], [9.99, 10.02]]
    )
    # venue 0's bid of 10.00 is never withdrawn: the best bid stays 10.00 after the
    # best quote fell to 9.99
    np.testing.assert_allclose(
        per_venue[1:], [[10.00, 10.03], [10.01, 10.03], [10.00, 10.03], [10.00, 10.02]]
    )


def test_measure_reads_a_lean_quote_file(tmp_path) -> None:
    rows = [  # time_ms, bid, bid_size, ask, ask_size, exchange, condition, suspicious
        "34200000,100000,5,0,0,P,0,0",
        "34200001,0,0,100200,5,Q,0,0",
        "34200002,100100,5,0,0,Q,0,0",
        "34200003,99900,5,0,0,Q,0,1",  # suspicious: left out
        "34200004,99900,5,0,0,Q,0,0",
        "3600000,100000,5,0,0,P,0,0",  # before the open: left out
    ]
    path = tmp_path / "20131007_quote.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("20131007_bac_quote.csv", "\n".join(rows) + "\n")
    r = measure(path)
    assert r["rows"] == 4 and r["venues"] == 2
    # carried: (10.00, 10.02), (10.01, 10.02), (9.99, 10.02): spreads 2, 1, 3 cents
    assert r["carried"]["locked_or_crossed"] == 0.0
    assert abs(r["carried"]["median_spread"] - 0.02) < 1e-9
    assert abs(r["carried"]["mid_changes_per_row"] - 1.0) < 1e-9
    # per venue: P's 10.00 stays the best bid after Q's bid falls to 9.99
    assert abs(r["per_venue"]["median_spread"] - 0.02) < 1e-9
