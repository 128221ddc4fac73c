"""``gpt4llm publish SOURCE --to OUT_DIR [--push-to-hub REPO_ID]``: a study's result in the form
people load and share: Parquet shards with a dataset card that ``datasets.load_dataset(OUT_DIR)``
reads (configs and splits from the card's YAML, as on the Hub), and trained checkpoints with a
model card beside their weights.

SOURCE is a data file (Alpaca, comparison v2, TRL pairs, KTO rows or messages), a checkpoint
directory that ``train`` wrote, or a study directory (``gpt4llm run``'s output: every dataset it
made becomes a config, every finished model gets its card under ``models/<name>/``). Load:
everything is read and validated first. Do: the files are written into a temporary directory
beside OUT_DIR. Write: that directory is renamed onto OUT_DIR, so a bad input or a crash leaves
nothing half-written. Then, if asked, the upload (``hub``).

Modules: ``settings`` (the command's settings), ``build`` (the work, top to bottom), ``data``
(records -> Parquet), ``provenance``, ``models`` (checkpoints), ``cards``, ``hub``.
"""
