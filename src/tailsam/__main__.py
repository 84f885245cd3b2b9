"""`python -m tailsam` is the `tailsam` command (torchrun launches it this way)."""

from tailsam.cli import main

raise SystemExit(main())
