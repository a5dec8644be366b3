"""Allows `python -m tinysense`."""

from tinysense.cli import main

raise SystemExit(main())
