"""Commands only: each module parses options, calls one core function and prints."""
