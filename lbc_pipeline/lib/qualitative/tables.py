"""The interview tables each stage writes (names only: cheap to import for the Dagster
definitions, which need them to declare the assets)."""

RAW_TABLES = ("raw.interviews", "raw.interview_segments", "raw.interview_codes", "raw.interview_load_log")
STAGING_TABLES = ("staging.interviews", "staging.interview_codes", "staging.interview_segments",
                  "staging.interview_quarantine")
