"""Benchmarks: `./jhaas bench` (= `python -m bench`). Each prints its figures next
to a raw baseline measured in the same run on the same machine."""
