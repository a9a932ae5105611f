"""Helpers the test modules share: the gateway's processes, peers, personas, pipelines, cases.

Test modules import from here and never from one another (tests/test_suite_layout.py).
"""
