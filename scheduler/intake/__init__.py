"""Intake: CSV import, enrichment, email qualification, the first touch."""
