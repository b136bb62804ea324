from backfill_cli.main import run

run()
