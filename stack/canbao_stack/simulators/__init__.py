"""Simulators of the business systems of shared/sources.md: one `sources` database."""

from pathlib import Path

SCHEMA_SQL = Path(__file__).with_name("schema.sql")

# Every simulated table as (schema, table): the Debezium connector captures exactly these.
TABLES: tuple[tuple[str, str], ...] = (
    ("si_core", "ab01"),
    ("si_core", "ac01"),
    ("si_core", "ac02"),
    ("si_core", "ac60"),
    ("medical", "insured"),
    ("hukou", "person"),
    ("hukou", "resident_permit"),
    ("civil", "cremation"),
    ("civil", "dibao"),
    ("education", "student"),
    ("justice", "inmate"),
    ("employment", "job_registration"),
    ("card", "card_holder"),
    ("national", "cross_region"),
)
