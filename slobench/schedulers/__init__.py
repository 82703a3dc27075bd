"""Batching policies behind one interface (`base.Scheduler`); look one up by name in `registry`."""
