"""The measuring kit: `python -m bench` (what `make bench` runs) and `python -m bench.dashboard`.

It measures the gateway and never ships with it: the wheel and the image hold only
workers/, parsers/, services/ and replies/.
"""
