"""Scenario files for the synthetic athlete (kinefuse simulate, the synthetic source, bench accuracy)."""
