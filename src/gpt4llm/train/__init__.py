"""Training stages: ``sft`` (the Alpaca recipe) and, later, ``reward``."""
