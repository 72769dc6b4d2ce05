"""imaphook's integration tests: the programs of the sanitizer build against
a real Dovecot (tests/fixtures/) and real HTTP receivers on 127.0.0.1.

Run them with `make check-integration`, or from the repository root with
`python3 -m unittest discover -s tests/integration -t tests -p 'test_*.py'`
(after `make san`). harness.py has everything the tests share."""
