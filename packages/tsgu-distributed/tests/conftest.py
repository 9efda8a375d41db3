"""The worker scripts under workers/ run in their own processes (through
tsgu.distributed.testing.run_workers); pytest does not import them."""

collect_ignore = ["workers"]
