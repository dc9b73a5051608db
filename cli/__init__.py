"""`skyline`: the release manager's command line, a client of the Skyline API."""
