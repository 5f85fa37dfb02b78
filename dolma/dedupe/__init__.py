"""The Bloom-filter `dedupe` run: config, plan, checkpoint store, local loop, Spark path (entry point:
`dolma/commands/dedupe.py`)."""
