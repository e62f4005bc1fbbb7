"""``python -m bench``: the load and scale benchmarks (see bench/load.py and the README)."""

import argparse
import sys

from bench.load import main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiers", default="1000", help="links per tier, e.g. 1000,1000000")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--pg-db", default="h_bench_load", help="PostgreSQL database to rebuild")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--duration", type=int, default=8, help="seconds per read endpoint and round"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds over the endpoints (median kept)"
    )
    parser.add_argument(
        "--write-duration", type=int, default=2, help="seconds per write endpoint and round"
    )
    parser.add_argument(
        "--cache",
        choices=["auto", "redis", "db"],
        default="auto",
        help="rate-limit store: Redis (production's; auto when it answers on 6379) or the database",
    )
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument("--explain-all", action="store_true", help="plans on SQLite too")
    parser.add_argument("--print-plans", action="store_true", help="print plans at every tier")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
