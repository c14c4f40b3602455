"""Developer scripts; ``scripts.services`` starts the real loopback services the tests and ``make local-run-s3`` use."""
