"""keyrevoke: revoke every leaked exchange API key, fast, completely and provably.

This package holds what the workflows, activities, workers and the commander's CLI share. Its
``__init__`` imports nothing so that workflow code can import the small type modules alone.
"""
