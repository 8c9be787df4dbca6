"""Statistics, result model, regression comparison and sign-off reports (see docs/design.md)."""
