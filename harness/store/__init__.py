"""The result store: what a run's identity is (its cache key), the record format, where records
live, resume, and consolidation into one Parquet table. Sweep and report both import it; it
imports neither (docs/DESIGN.md section 1: config -> run -> record -> store -> report)."""
