"""The studio's benchmarks: tools beside the library, not part of it. Run `python -m benchmarks` (make bench)."""
