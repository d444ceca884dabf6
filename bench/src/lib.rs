//! Benchmark and load-generation support for floodgate.
