"""lic-harness: benchmark and compare image codecs on real bitstreams."""

__version__ = "0.1.0"
