"""Allows `python -m tinysense`."""

try:
    from tinysense.cli import main
except KeyboardInterrupt:     # Ctrl-C while Python was still importing: no traceback
    import sys

    print("tinysense: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
