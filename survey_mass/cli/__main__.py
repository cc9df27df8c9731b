"""``python -m survey_mass.cli``: the same as the ``survey-mass`` command."""

import sys

from survey_mass.cli import main

sys.exit(main())
