"""CLI verbs, one module each (see survey_mass.cli)."""
