"""The collector: the browser-facing routes of Skyline in a process of their own."""
