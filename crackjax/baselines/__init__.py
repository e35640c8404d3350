"""The research plan's existing models, as model kinds in the same harness (crackjax/kinds.py)."""
