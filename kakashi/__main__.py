"""``kakashi`` command line: ``kakashi bench [options]`` runs the benchmark table."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: kakashi bench [options]   (kakashi bench --help for the options)")
        return 0 if args else 2
    if args[0] != "bench":
        print(f"kakashi: unknown command {args[0]!r}; try: kakashi bench", file=sys.stderr)
        return 2
    from .bench import main as bench_main

    return bench_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
