"""Evaluation stages: ``answer`` (benchmark answers), and later ``judge``, ``rouge``, ``human``, ``rank``."""
