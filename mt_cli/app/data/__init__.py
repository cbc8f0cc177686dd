"""`mt-cli data clean` and `data check`: the rules of core/clean_rules.py over a whole corpus,
streamed in chunks across the cores, in order."""
