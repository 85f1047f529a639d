"""``python -m pipeline.training``: the training command line."""

from pipeline.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
