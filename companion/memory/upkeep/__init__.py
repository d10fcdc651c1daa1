"""The upkeep room: what memory does on its own — forgetting (`forgetting.py`), consolidation into summaries,
facts, the profile and digests (`consolidate.py`; `extractive.py` without a model, `grounding.py` for what
counts as said), on a schedule (`scheduler.py`). It decides and hands plans to the tables room."""
