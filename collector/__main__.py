from collector.main import run

run()
