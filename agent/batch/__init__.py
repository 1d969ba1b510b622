"""Many needs through one chain (``whazzat batch``): input rows, the run, records out, progress."""
