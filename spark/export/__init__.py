"""Reports as files: CSV, XLSX and PDF (Export@Scale)."""
