"""Decision quality of the judge on a seeded, labelled simulation of browser-load traffic."""
