"""The interview strand (shared/spec/qualitative.md), pure code in flow order:

reading.py   a wave's interviews/ folder: three tables (csv, xlsx) or one REFI-QDA .qdpx
loading.py   the raw tables and their load log
contracts.py the pandera contract of every interview table
staging.py   rules and quarantine, types, redaction of excerpts
redact.py    the name dictionary and the rules for names it misses
marts.py     registry against the design, code matrix, co-occurrence, the joint display
privacy.py   the search that proves no raw name leaves the raw layer
report.py    the report's interview section (heat map as inline SVG)
pipeline.py  the steps the Dagster assets call, one each
"""
