"""Helpers shared by the tests (no test_*.py here, so pytest collects nothing from it).

`tests.support.problems.assert_problem` checks an error response's contract shape;
`tests.support.stores` starts stores a test may stop (own redis-server, a TCP relay to the
database). `tests.factories`, `tests.servers` and `tests.browser` stay importable at their paths.
"""
