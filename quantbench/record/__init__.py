"""The JSON records: a study's results and a bench's timings, and their schema."""
