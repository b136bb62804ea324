"""The bench's gunicorn configuration: nothing, on purpose.

Without `--config`, gunicorn would read the repository's gunicorn.conf.py (production's: a
structured access line per request, gthread workers), and the figures would change with it.
bench/pages.py passes everything it needs on the command line.
"""
