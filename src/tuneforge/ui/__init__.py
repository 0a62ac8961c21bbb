"""`tuneforge ui`: a local web workbench over the library (data, review, train, runs, playground, compare).

A thin skin: every route calls a library function that the CLI also calls; training and comparisons run
as `tuneforge` subprocesses recorded in SQLite; the pages are static files served from this package.
"""
