"""Statistics, result model, regression comparison and sign-off reports (see DESIGN.md)."""
