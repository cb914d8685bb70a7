"""`python -m automl_kit ...` runs the `automl-kit` command (`cli.py`)."""

import sys

from automl_kit.cli import main

sys.exit(main())
