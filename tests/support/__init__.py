"""Test support code shared by the unit and end-to-end tests (fakes, helpers, rule checkers)."""
