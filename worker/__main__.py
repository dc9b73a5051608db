from worker.main import run

run()
